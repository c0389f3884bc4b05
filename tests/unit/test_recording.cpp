// Recordings for offline explain: written, read back, and rejected when they
// are not recordings.
#include <gtest/gtest.h>

#include "temp_file.h"
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "world/recording.h"

using namespace natbpf;


TEST(Recording, HexRoundTripAndBadDigits) {
  std::vector<uint8_t> bytes{0x00, 0x7f, 0x80, 0xff, 0x12};
  EXPECT_EQ(to_hex(bytes), "007f80ff12");
  EXPECT_EQ(from_hex("007f80ff12"), bytes);
  EXPECT_TRUE(from_hex("0g").empty());
  EXPECT_TRUE(from_hex("abc").empty());  // odd length
}

TEST(Recording, WrittenRecordsReadBackInOrder) {
  std::string path = temp_path();
  {
    auto w = RecordingWriter::create(path, {{"command", "trace"}, {"kernel", "6.1.0"}});
    ASSERT_TRUE(w);
    std::vector<uint8_t> datagram{1, 2, 3};
    w->raw("nftrace", datagram, 42);
    w->write({{"t", "flush"}, {"ns", 43}, {"all", false}});
  }
  auto r = read_recording(path);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->header.value("command", ""), "trace");
  EXPECT_EQ(r->header.value("version", 0), kRecordingVersion);
  ASSERT_EQ(r->records.size(), 2u);
  EXPECT_EQ(r->records[0].value("t", ""), "nftrace");
  EXPECT_EQ(r->records[0].value("ns", 0), 42);
  EXPECT_EQ(from_hex(r->records[0].value("hex", "")), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(r->records[1].value("t", ""), "flush");
  std::remove(path.c_str());
}

TEST(Recording, RejectsWhatIsNotARecording) {
  std::string path = temp_path();
  auto write = [&](const std::string& text) { std::ofstream(path) << text; };
  write("{\"type\":\"packet\"}\n");
  auto r = read_recording(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, path + " is not a natbpf recording");
  EXPECT_EQ(r.error().exit_code, 2);
  write("{\"record\":\"natbpf\",\"version\":99}\n");
  EXPECT_NE(read_recording(path).error().message.find("version 99"), std::string::npos);
  write("{\"record\":\"natbpf\",\"version\":1}\nnot json\n");
  EXPECT_EQ(read_recording(path).error().message, path + " line 2 is not JSON");
  write("");
  EXPECT_EQ(read_recording(path).error().message, path + " is empty");
  std::remove(path.c_str());
  EXPECT_FALSE(read_recording(path));
  EXPECT_FALSE(RecordingWriter::create("/nonexistent/dir/x", {}));
}
