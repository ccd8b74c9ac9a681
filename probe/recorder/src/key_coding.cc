#include "flowfold/recorder/key_coding.h"

#include <algorithm>

namespace flowfold::recorder {

namespace {

enum Form : uint8_t { kIpv6 = 1, kVlan = 2, kInnerVlan = 4, kIngressIf = 8, kRawKey = 16 };

// Whether the compact form holds every byte of the key (an IP flow whose
// address bytes beyond the family's are zero); else the raw key goes.
bool compactFits(const FlowKey& k) {
  if (k.ip_version == 6) return true;
  if (k.ip_version != 4) return false;
  const auto zeroTail = [](const std::array<uint8_t, 16>& a) {
    return std::all_of(a.begin() + 4, a.end(), [](uint8_t b) { return b == 0; });
  };
  return zeroTail(k.src_addr) && zeroTail(k.dst_addr);
}

void putBytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

}  // namespace

void putKey(std::vector<uint8_t>& out, const FlowKey& k) {
  if (!compactFits(k)) {
    out.push_back(kRawKey);
    putBytes(out, &k, sizeof k);
    return;
  }
  const uint8_t form = (k.ip_version == 6 ? kIpv6 : 0) | (k.vlan_id ? kVlan : 0) | (k.inner_vlan_id ? kInnerVlan : 0) |
                       (k.ingress_if ? kIngressIf : 0);
  out.push_back(form);
  out.push_back(k.protocol);
  const size_t addr = k.ip_version == 6 ? 16 : 4;
  putBytes(out, k.src_addr.data(), addr);
  putBytes(out, k.dst_addr.data(), addr);
  putBytes(out, &k.src_port, 2);
  putBytes(out, &k.dst_port, 2);
  if (k.vlan_id) putVarint(out, k.vlan_id);
  if (k.inner_vlan_id) putVarint(out, k.inner_vlan_id);
  if (k.ingress_if) putVarint(out, k.ingress_if);
}

bool CodedReader::key(FlowKey& k) {
  uint8_t form = 0;
  if (!bytes(&form, 1)) return false;
  k = FlowKey{};
  if (form & kRawKey) return bytes(&k, sizeof k);
  const size_t addr = (form & kIpv6) ? 16 : 4;
  k.ip_version = (form & kIpv6) ? 6 : 4;
  if (!bytes(&k.protocol, 1) || !bytes(k.src_addr.data(), addr) || !bytes(k.dst_addr.data(), addr) ||
      !bytes(&k.src_port, 2) || !bytes(&k.dst_port, 2))
    return false;
  const auto small = [&](uint8_t bit, uint16_t& field) {
    uint64_t v = 0;
    if (!(form & bit)) return true;
    if (!varint(v) || v > UINT16_MAX) return false;
    field = static_cast<uint16_t>(v);
    return true;
  };
  return small(kVlan, k.vlan_id) && small(kInnerVlan, k.inner_vlan_id) && small(kIngressIf, k.ingress_if);
}

bool CodedReader::skipKey(const uint8_t*& start, size_t& n) {
  start = p_;
  uint8_t form = 0;
  if (!bytes(&form, 1)) return false;
  const size_t fixed = (form & kRawKey) ? sizeof(FlowKey) : 1 + 2 * ((form & kIpv6) ? 16 : 4) + 4;
  if (static_cast<size_t>(end_ - p_) < fixed) return false;
  p_ += fixed;
  if (!(form & kRawKey))
    for (const uint8_t bit : {kVlan, kInnerVlan, kIngressIf}) {
      uint64_t v = 0;
      if ((form & bit) && !varint(v)) return false;
    }
  n = static_cast<size_t>(p_ - start);
  return true;
}

}  // namespace flowfold::recorder
