#pragma once
// DPI labels in IPFIX (`dpi: true`): templates 268/269 (and 270/271 with
// flowDirection) are 256/257 (258/259) with the label appended:
//
//   applicationId (95)            4 octets: classification engine 22 (IANA:
//                                 "ntop nDPI"), then nDPI's protocol id in 3
//                                 octets, the application's (YouTube) or, for
//                                 a plain protocol, the protocol's (RFC 6759)
//   applicationName (96)          nDPI's name, master first: "TLS.YouTube"
//   applicationCategoryName (372) nDPI's category: "Web"
//   httpRequestHost (460)         the server name of an HTTP flow
//   ntop 35632/188 SSL_SERVER_NAME  that of a TLS, QUIC or DTLS flow (SNI)
//   ntop 35632/205 DNS_QUERY        that of a DNS, mDNS or LLMNR flow
//
// The names are variable-length (RFC 7011 section 7: one length octet;
// names are below 255 octets); a field that does not apply is empty. IANA
// has no element for a TLS SNI or a DNS query name: ntop's (nProbe's) are
// what Wireshark and ntopng decode. nfdump 1.7 keeps applicationId alone.

#include <cstring>
#include <string>

#include "flowfold/exporters/app_names.h"
#include "ipfix_fields.h"

namespace flowfold::ipfix {

inline constexpr uint32_t kNtopPen = 35632;
inline constexpr uint16_t kVariableLength = 65535;
inline constexpr uint8_t kNdpiClassificationEngine = 22;
inline constexpr size_t kMaxNameOctets = 64;

#define FLOWFOLD_IPFIX_APPLICATION_SPECS                                       \
  FieldSpec{"applicationId", 95, 4}, FieldSpec{"applicationName", 96, kVariableLength},                       \
      FieldSpec{"applicationCategoryName", 372, kVariableLength},                                             \
      FieldSpec{"httpRequestHost", 460, kVariableLength},                                                     \
      FieldSpec{"SSL_SERVER_NAME", 188, kVariableLength, kNtopPen}, FieldSpec {                                \
    "DNS_QUERY", 205, kVariableLength, kNtopPen                                                               \
  }

inline constexpr FieldSpec kApplicationFields[] = {FLOWFOLD_IPFIX_APPLICATION_SPECS};
inline constexpr FieldSpec kDirectionApplicationFields[] = {FieldSpec{"flowDirection", 61, 1},
                                                           FLOWFOLD_IPFIX_APPLICATION_SPECS};
#undef FLOWFOLD_IPFIX_APPLICATION_SPECS

/// The label's fields as they go on the wire, after the fixed record.
class ApplicationTail {
 public:
  explicit ApplicationTail(const AppLabel& label)
      : id_(label.app != 0 ? label.app : label.master),
        name_(applicationName(label)),
        category_(categoryName(label)),
        kind_(serverNameKind(label)),
        server_(label.serverName()) {
    trim(name_);
    trim(category_);
  }

  /// Octets on the wire: applicationId, then five strings of one length
  /// octet each, the server name in at most one of them.
  size_t size() const { return 4 + 5 + name_.size() + category_.size() + (isFiled() ? server_.size() : 0); }

  /// Writes size() octets at `p`.
  void write(uint8_t* p) const {
    p[0] = kNdpiClassificationEngine;
    p[1] = 0;
    p[2] = static_cast<uint8_t>(id_ >> 8);
    p[3] = static_cast<uint8_t>(id_);
    p += 4;
    p = putString(p, name_);
    p = putString(p, category_);
    p = putString(p, kind_ == ServerNameKind::kHttpHost ? server_ : std::string_view());
    p = putString(p, kind_ == ServerNameKind::kTlsSni ? server_ : std::string_view());
    putString(p, kind_ == ServerNameKind::kDnsQuery ? server_ : std::string_view());
  }

 private:
  // A server name of another protocol (a DHCP host name) has no field.
  bool isFiled() const { return kind_ != ServerNameKind::kNone && kind_ != ServerNameKind::kOther; }
  // nDPI's names are short ("TLS.YouTube", "SocialNetwork"); the bounds keep
  // any record well inside the smallest message (ipfix_exporter.cc kMinMtu).
  static void trim(std::string& s) {
    if (s.size() > kMaxNameOctets) s.resize(kMaxNameOctets);
  }
  static uint8_t* putString(uint8_t* p, std::string_view s) {
    p[0] = static_cast<uint8_t>(s.size());
    std::memcpy(p + 1, s.data(), s.size());
    return p + 1 + s.size();
  }

  uint16_t id_;
  std::string name_, category_;
  ServerNameKind kind_;
  std::string_view server_;
};

}  // namespace flowfold::ipfix
