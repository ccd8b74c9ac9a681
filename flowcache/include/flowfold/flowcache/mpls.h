#pragma once
// MPLS label stack entries as flows carry them from the decoder to the
// exporters: the top three entries of the packet's stack.

#include <array>
#include <cstdint>

namespace flowfold {

/// One label stack entry as RFC 7012 exports it (mplsTopLabelStackSection and
/// mplsLabelStackSection2..): label (20 bits) | TC (3 bits) | S (1 bit) in
/// the low 24 bits, the entry's first three octets on the wire. Bit 24 is
/// set when the packet had the entry, so that label 0 with TC 0 and S 0 (a
/// valid entry: IPv4 explicit null above more labels) is not taken for "no
/// entry"; 0 means the stack was shallower.
inline constexpr uint32_t kMplsEntryPresent = 1u << 24;
inline constexpr uint32_t kMplsEntryMask = 0xFFFFFF;  // the 3 octets exported

/// The top three entries of a packet's stack (index 0 = top); deeper entries
/// are not kept. All zero: no MPLS.
inline constexpr unsigned kMplsEntriesKept = 3;
using MplsStack = std::array<uint32_t, kMplsEntriesKept>;

/// An entry from the first 4 bytes of a label stack entry on the wire (the
/// TTL octet dropped).
constexpr uint32_t mplsEntry(uint32_t wire_word) { return wire_word >> 8 | kMplsEntryPresent; }
constexpr bool mplsPresent(uint32_t entry) { return (entry & kMplsEntryPresent) != 0; }
/// The 3 octets to export: 0 for an absent entry (what collectors read as none).
constexpr uint32_t mplsSection(uint32_t entry) { return entry & kMplsEntryMask; }
constexpr uint32_t mplsLabel(uint32_t entry) { return (entry & kMplsEntryMask) >> 4; }
constexpr uint32_t mplsTrafficClass(uint32_t entry) { return (entry >> 1) & 7; }
constexpr uint32_t mplsBottom(uint32_t entry) { return entry & 1; }

}  // namespace flowfold
