// Fuzz-style robustness: random bytes, every prefix of valid packets and
// random mutations go through decode() on every link type. Nothing may
// crash or read out of bounds (run this binary once under
// -fsanitize=address,undefined: cmake -DFLOWFOLD_SANITIZE=ON), and the
// invariant packets == decoded + skipped must hold after every packet.
// Deterministic: fixed seeds.

#include <gtest/gtest.h>

#include <random>

#include "decoder_test_util.h"

namespace flowfold::probe::test {
namespace {

const int kAllLinkTypes[] = {dlt::kNull,  dlt::kEn10mb, dlt::kRaw,  dlt::kLoop, dlt::kLinuxSll,
                             dlt::kIpv4,  dlt::kIpv6,   dlt::kLinuxSll2, 147 /* unsupported */};

// Bytes that steer random input into the interesting branches.
const uint8_t kInteresting[] = {0x08, 0x00, 0x86, 0xdd, 0x81, 0x88, 0xa8, 0x91, 0x47, 0x48,
                                0x64, 0x63, 0x45, 0x46, 0x4f, 0x60, 0x00, 0x2b, 0x2c, 0x3c,
                                0x33, 0x32, 0x3b, 0x11, 0x06, 0x01, 0x3a, 0x84, 0x21, 0x57,
                                0x02, 0x18, 0x1e, 0xff, 0x01, 0x00};

TEST(DecoderFuzz, RandomBytesOnEveryLinkType) {
  std::mt19937 rng(20240601);
  std::vector<uint8_t> buffer(512);
  for (int dlt : kAllLinkTypes) {
    Decoder decoder(dlt, FragmentTableConfig{64, 30000});
    DecodedPacket info;
    for (int i = 0; i < 20000; ++i) {
      uint32_t len = rng() % buffer.size();
      for (uint32_t j = 0; j < len; ++j) {
        buffer[j] = (rng() % 3 == 0) ? kInteresting[rng() % sizeof(kInteresting)]
                                     : static_cast<uint8_t>(rng());
      }
      // Copy into an exactly-sized heap block so ASan sees any over-read.
      std::vector<uint8_t> packet(buffer.begin(), buffer.begin() + len);
      uint32_t wirelen = len + (rng() % 2 == 0 ? 0 : rng() % 70000);
      decoder.decode(packet.data(), len, wirelen, i * 7, info);
    }
    const DecodeCounters& c = decoder.counters();
    EXPECT_EQ(c.packets, 20000u);
    EXPECT_EQ(c.packets, c.decoded + c.skipped()) << dlt;
  }
}

// A corpus of valid packets, one per layer combination, for a given link.
std::vector<Bytes> validPackets(int dlt) {
  std::vector<Bytes> ip = {
      cat({kIpv4Udp, kUdp1234To53}),
      kIpv4Tcp,
      cat({ipv4Header(28, 1), {0x08, 0x00, 0, 0, 0, 1, 0, 1}}),
      ipv6Udp(),
      cat({ipv6Header(28, 0), {60, 0, 1, 4, 0, 0, 0, 0}, {17, 0, 1, 4, 0, 0, 0, 0}, kUdp1234To53}),
      cat({ipv6Header(36, 51), {17, 4, 0, 0}, Bytes(20, 3), kUdp1234To53}),
      cat({ipv6Header(20, 44), {17, 0, 0, 1, 0, 0, 0, 7}, kUdp1234To53}),
      cat({ipv6Header(0, 0), {17, 0, 0xc2, 4, 0, 0, 0, 20}, kUdp1234To53}),
  };
  std::vector<Bytes> out;
  for (const Bytes& packet : ip) {
    bool v6 = (packet[0] >> 4) == 6;
    switch (dlt) {
      case dlt::kEn10mb:
        out.push_back(cat({ethernet(v6 ? 0x86 : 0x08, v6 ? 0xdd : 0x00), packet}));
        out.push_back(cat({ethernet(0x88, 0xa8), {0x00, 0x07, 0x81, 0x00},
                           {0x00, 0x08, static_cast<uint8_t>(v6 ? 0x86 : 0x08),
                            static_cast<uint8_t>(v6 ? 0xdd : 0x00)},
                           packet}));
        out.push_back(cat({ethernet(0x88, 0x47), {0, 6, 0x40, 0x40}, {0, 0x0c, 0x81, 0x3f}, packet}));
        out.push_back(cat({ethernet(0x88, 0x64), {0x11, 0, 0, 1, 0, 0x40},
                           {0x00, static_cast<uint8_t>(v6 ? 0x57 : 0x21)}, packet}));
        break;
      case dlt::kLinuxSll:
        out.push_back(cat({{0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
                            static_cast<uint8_t>(v6 ? 0x86 : 0x08),
                            static_cast<uint8_t>(v6 ? 0xdd : 0x00)},
                           packet}));
        break;
      case dlt::kLinuxSll2:
        out.push_back(cat({{static_cast<uint8_t>(v6 ? 0x86 : 0x08),
                            static_cast<uint8_t>(v6 ? 0xdd : 0x00), 0, 0, 0, 0, 0, 1, 0, 1, 0, 6,
                            1, 2, 3, 4, 5, 6, 0, 0},
                           packet}));
        break;
      case dlt::kNull:
      case dlt::kLoop:
        out.push_back(cat({{static_cast<uint8_t>(v6 ? 30 : 2), 0, 0, 0}, packet}));
        break;
      case dlt::kIpv4:
        if (!v6) out.push_back(packet);
        break;
      case dlt::kIpv6:
        if (v6) out.push_back(packet);
        break;
      default:
        out.push_back(packet);
        break;
    }
  }
  return out;
}

TEST(DecoderFuzz, EveryPrefixOfValidPacketsIsOkOrTruncated) {
  for (int dlt : kAllLinkTypes) {
    if (!Decoder::supportsLinkType(dlt)) continue;
    for (const Bytes& packet : validPackets(dlt)) {
      Decoder full_decoder(dlt, FragmentTableConfig{4, 30000});
      DecodedPacket full;
      ASSERT_EQ(full_decoder.decode(packet.data(), static_cast<uint32_t>(packet.size()),
                                    static_cast<uint32_t>(packet.size()), 0, full),
                DecodeStatus::kOk)
          << "dlt " << dlt << " size " << packet.size();
      Decoder decoder(dlt, FragmentTableConfig{4, 30000});
      for (size_t caplen = 0; caplen <= packet.size(); ++caplen) {
        std::vector<uint8_t> prefix(packet.begin(), packet.begin() + caplen);
        DecodedPacket info;
        DecodeStatus status = decoder.decode(prefix.data(), static_cast<uint32_t>(caplen),
                                             static_cast<uint32_t>(packet.size()), 0, info);
        // A snap length can only hide information, never make a packet bad.
        ASSERT_TRUE(status == DecodeStatus::kOk || status == DecodeStatus::kTruncated)
            << "dlt " << dlt << " caplen " << caplen;
        if (status == DecodeStatus::kOk) {
          // Whatever decodes from a prefix decodes exactly as the whole packet.
          EXPECT_EQ(info.key, full.key) << "dlt " << dlt << " caplen " << caplen;
          EXPECT_EQ(info.ip_length, full.ip_length);
          EXPECT_EQ(info.tcp_flags, full.tcp_flags);
        }
        expectInvariant(decoder.counters());
      }
    }
  }
}

TEST(DecoderFuzz, RandomMutationsOfValidPackets) {
  std::mt19937 rng(7);
  for (int dlt : kAllLinkTypes) {
    Decoder decoder(dlt, FragmentTableConfig{16, 30000});
    DecodedPacket info;
    std::vector<Bytes> corpus = validPackets(Decoder::supportsLinkType(dlt) ? dlt : dlt::kRaw);
    uint64_t ts = 0;
    for (const Bytes& original : corpus) {
      for (int i = 0; i < 3000; ++i) {
        Bytes packet = original;
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
          size_t at = rng() % packet.size();
          packet[at] = (rng() % 2 == 0) ? kInteresting[rng() % sizeof(kInteresting)]
                                        : static_cast<uint8_t>(rng());
        }
        uint32_t caplen = static_cast<uint32_t>(rng() % (packet.size() + 1));
        packet.resize(caplen);
        decoder.decode(packet.data(), caplen, static_cast<uint32_t>(original.size()), ts += 3,
                       info);
      }
    }
    expectInvariant(decoder.counters());
  }
}

}  // namespace
}  // namespace flowfold::probe::test
