// A segment's address filter (address_filter.h): every address word of its
// keys is found, few others are, and a file cut short is not used.
#include "flowfold/recorder/address_filter.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <set>
#include <vector>

namespace flowfold::recorder {
namespace {

namespace fs = std::filesystem;

FlowKey v4(uint32_t src, uint32_t dst) {
  FlowKey k;
  k.ip_version = 4;
  k.protocol = 17;
  for (int i = 0; i < 4; ++i) {
    k.src_addr[i] = static_cast<uint8_t>(src >> (24 - 8 * i));
    k.dst_addr[i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
  }
  return k;
}

uint32_t word(uint32_t address) {  // as the packet (and a filter's needle) holds it
  const uint8_t bytes[4] = {static_cast<uint8_t>(address >> 24), static_cast<uint8_t>(address >> 16),
                            static_cast<uint8_t>(address >> 8), static_cast<uint8_t>(address)};
  return addressWord(bytes);
}

TEST(AddressFilter, HoldsEveryAddressWordOfItsKeysAndFewOthers) {
  std::mt19937 rng(5);
  std::vector<FlowKey> keys;
  std::set<uint32_t> present;
  for (int i = 0; i < 20000; ++i) {
    const uint32_t a = rng(), b = rng();
    keys.push_back(v4(a, b));
    present.insert(a);
    present.insert(b);
  }
  FlowKey six;
  six.ip_version = 6;
  for (int i = 0; i < 16; ++i) six.src_addr[i] = static_cast<uint8_t>(0x20 + i), six.dst_addr[i] = static_cast<uint8_t>(0x90 + i);
  keys.push_back(six);
  const AddressFilterBuilder filter(keys);
  for (uint32_t a : present) ASSERT_TRUE(filter.mayHold(word(a))) << a;
  for (int i = 0; i < 16; i += 4) {  // each of an IPv6 address's four words
    EXPECT_TRUE(filter.mayHold(addressWord(six.src_addr.data() + i)));
    EXPECT_TRUE(filter.mayHold(addressWord(six.dst_addr.data() + i)));
  }
  int taken = 0, asked = 0;
  for (int i = 0; i < 100000; ++i) {
    const uint32_t a = rng();
    if (present.count(a)) continue;
    ++asked;
    taken += filter.mayHold(word(a));
  }
  // About 8 bits a word, 3 bits set each: a few percent, far from all.
  EXPECT_LT(taken, asked / 10);
  EXPECT_GT(asked, 99000);
}

TEST(AddressFilter, TheFileAnswersAsTheFilterDoesAndACutFileIsNotUsed) {
  const fs::path dir = fs::temp_directory_path() / ("flowfold-adf-test-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = addressFilterPathOf((dir / "flowfold-000000000001-file-1.pcap").string());
  EXPECT_EQ(fs::path(path).extension(), ".adf");
  const std::vector<FlowKey> keys = {v4(0x0a000001, 0xc0000201), v4(0x0a000002, 0x08080808)};
  AddressFilterBuilder filter(keys);
  std::string error;
  ASSERT_TRUE(filter.write(path, 123456, 77, error)) << error;
  EXPECT_EQ(fs::file_size(path), filter.fileBytes());
  EXPECT_FALSE(filter.write(path, 1, 1, error));  // never over a file
  const std::vector<uint32_t> absent = {word(0xc0000299), word(0x01020304)};
  const std::vector<uint32_t> one = {word(0x01020304), word(0x08080808)};
  auto a = askAddressFilter(path, absent);
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->may_hold_one);
  EXPECT_FALSE(a->non_ip_keys);
  EXPECT_EQ(a->indexed_end, 123456u);
  EXPECT_EQ(a->index_blocks, 77u);
  auto b = askAddressFilter(path, one);
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(b->may_hold_one);
  EXPECT_EQ(b->held, (std::vector<bool>{false, true}));  // per word asked
  // Keys that are no IP flow's (the all-zero key of ARP): said, since no word stands for them.
  const std::string other = addressFilterPathOf((dir / "other.pcap").string());
  ASSERT_TRUE(AddressFilterBuilder(std::vector<FlowKey>{FlowKey{}, keys[0]}).write(other, 0, 0, error)) << error;
  auto c = askAddressFilter(other, absent);
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->non_ip_keys);
  // Cut at any length, or missing: not used.
  const uintmax_t size = fs::file_size(path);
  for (uintmax_t cut : {uintmax_t{0}, uintmax_t{8}, uintmax_t{40}, size - 8, size - 1}) {
    fs::copy_file(path, path + ".cut", fs::copy_options::overwrite_existing);
    fs::resize_file(path + ".cut", cut);
    EXPECT_FALSE(askAddressFilter(path + ".cut", absent).has_value()) << cut;
  }
  EXPECT_FALSE(askAddressFilter((dir / "missing.adf").string(), absent).has_value());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flowfold::recorder
