// The intake journal's record format (host/store/journal/JournalFormat.h):
// round trips, the checksum, and what a scan keeps of a segment cut or
// damaged anywhere.
#include "store/journal/JournalFormat.h"

#include <catch2/catch.hpp>

#include <string>

using namespace clayhook::journal;

namespace {

Record sample(uint64_t seq,
              std::string body = R"({"event":"enrichment.completed","row_id":"r1"})") {
    Record r;
    r.seq = seq;
    r.received_at_ms = 1'764'000'000'000 + static_cast<int64_t>(seq);
    r.id = "evt_" + std::to_string(seq);
    r.source = "clay";
    r.type = "enrichment.completed";
    r.key = "f:4:\"r1\"|" + std::to_string(seq);
    r.deliveries = {{"sink", ""}, {"crm", "order-" + std::to_string(seq)}};
    r.body = std::move(body);
    return r;
}

void check_same(const Record& a, const Record& b) {
    CHECK(a.seq == b.seq);
    CHECK(a.received_at_ms == b.received_at_ms);
    CHECK(a.id == b.id);
    CHECK(a.source == b.source);
    CHECK(a.type == b.type);
    CHECK(a.key == b.key);
    REQUIRE(a.deliveries.size() == b.deliveries.size());
    for (size_t i = 0; i < a.deliveries.size(); ++i) {
        CHECK(a.deliveries[i].plugin == b.deliveries[i].plugin);
        CHECK(a.deliveries[i].order_key == b.deliveries[i].order_key);
    }
    CHECK(a.body == b.body);
}

}  // namespace

TEST_CASE("journal format: CRC-32C matches the standard check value", "[journal]") {
    const std::string check = "123456789";
    CHECK(crc32c(0, check.data(), check.size()) == 0xE3069283u);
    // In pieces, as the sealed record computes it.
    CHECK(crc32c(crc32c(0, check.data(), 4), check.data() + 4, 5) == 0xE3069283u);
    const std::string long_text(1000, 'x');
    CHECK(crc32c(crc32c(0, long_text.data(), 333), long_text.data() + 333, 667) ==
          crc32c(0, long_text.data(), long_text.size()));
}

TEST_CASE("journal format: a record comes back exactly, binary bytes included", "[journal]") {
    std::string body("\0\xff{\"a\":1}\n\r\x80", 12);
    Record r = sample(7, body);
    r.deliveries.clear();
    std::string out = "prefix";
    REQUIRE(encode(r, out));
    auto d = decode(std::string_view(out).substr(6));
    REQUIRE(d);
    CHECK(d->size == out.size() - 6);
    check_same(d->record, r);

    // Sealed in two steps, the bytes are the same as in one.
    std::string two;
    REQUIRE(encode_unsealed(r, two));
    seal(two.data(), r.seq);
    CHECK(two == out.substr(6));
}

TEST_CASE("journal format: fields beyond their length prefix are refused", "[journal]") {
    Record r = sample(1);
    r.id.assign(70'000, 'i');
    std::string out;
    CHECK_FALSE(encode(r, out));
    CHECK(out.empty());
    r = sample(1);
    r.body.assign(kMaxPayload + 1, 'b');
    CHECK_FALSE(encode(r, out));
    CHECK(out.empty());
}

TEST_CASE("journal format: a segment cut anywhere keeps exactly the whole records before the cut",
          "[journal]") {
    std::string seg;
    std::vector<size_t> ends;
    for (uint64_t s = 1; s <= 3; ++s) {
        REQUIRE(encode(sample(s), seg));
        ends.push_back(seg.size());
    }
    SegmentScan all = scan_segment(seg);
    CHECK(all.valid_bytes == seg.size());
    CHECK(all.why.empty());
    REQUIRE(all.records.size() == 3);
    check_same(all.records[2], sample(3));

    for (size_t cut = 0; cut <= seg.size(); ++cut) {
        SegmentScan scan = scan_segment(std::string_view(seg).substr(0, cut));
        size_t whole = 0;
        while (whole < ends.size() && ends[whole] <= cut)
            ++whole;
        INFO("cut at " << cut);
        REQUIRE(scan.records.size() == whole);
        CHECK(scan.valid_bytes == (whole == 0 ? 0 : ends[whole - 1]));
        CHECK(scan.why.empty() == (cut == scan.valid_bytes));
    }
}

TEST_CASE("journal format: one damaged byte anywhere in a record ends the scan there",
          "[journal]") {
    std::string seg;
    REQUIRE(encode(sample(1), seg));
    const size_t first = seg.size();
    REQUIRE(encode(sample(2), seg));
    REQUIRE(encode(sample(3), seg));
    // Every byte of the second record: magic, length, seq, CRC, payload.
    std::string two;
    REQUIRE(encode(sample(2), two));
    for (size_t i = 0; i < two.size(); ++i) {
        std::string damaged = seg;
        damaged[first + i] = static_cast<char>(damaged[first + i] ^ 0x5a);
        SegmentScan scan = scan_segment(damaged);
        INFO("byte " << i << " of the second record");
        REQUIRE(scan.records.size() == 1);
        CHECK(scan.valid_bytes == first);
        CHECK_FALSE(scan.why.empty());
    }
    // A zero-filled tail (a preallocated or half-flushed page) is no record.
    std::string zeros = seg + std::string(100, '\0');
    SegmentScan scan = scan_segment(zeros);
    CHECK(scan.records.size() == 3);
    CHECK(scan.valid_bytes == seg.size());
}

TEST_CASE("journal format: a reused file's earlier records end the scan, without damage",
          "[journal]") {
    // A segment file reused once its records were all indexed: the new
    // records (seqs from 20, the name's) are written over the old ones (seqs
    // 11 to 16) from offset 0. Records of equal size here, so an old one
    // starts exactly where the new ones end.
    std::string old_use;
    for (uint64_t s = 11; s <= 16; ++s)
        REQUIRE(encode(sample(s), old_use));
    std::string reused;
    for (uint64_t s = 20; s <= 22; ++s)
        REQUIRE(encode(sample(s), reused));
    const size_t new_bytes = reused.size();
    REQUIRE(new_bytes < old_use.size());
    reused += old_use.substr(new_bytes);

    SegmentScan scan = scan_segment(reused, 20);
    REQUIRE(scan.records.size() == 3);
    CHECK(scan.records[2].seq == 22);
    CHECK(scan.valid_bytes == new_bytes);
    CHECK(scan.reused_tail);
    CHECK_THAT(scan.why, Catch::Contains("record 14 of an earlier use"));

    // Without the name's seq only the order tells: 14 after 22 ends it too.
    SegmentScan unnamed = scan_segment(reused);
    CHECK(unnamed.records.size() == 3);
    CHECK(unnamed.reused_tail);

    // Reused, and killed before its first new record was written: nothing.
    SegmentScan none = scan_segment(old_use, 20);
    CHECK(none.records.empty());
    CHECK(none.valid_bytes == 0);
    CHECK(none.reused_tail);

    // The old bytes starting mid-record read as a torn tail: a stop, no
    // record of the earlier use, and not said to be one.
    std::string misaligned = reused.substr(0, new_bytes) + old_use.substr(new_bytes + 7);
    SegmentScan torn = scan_segment(misaligned, 20);
    CHECK(torn.records.size() == 3);
    CHECK(torn.valid_bytes == new_bytes);
    CHECK_FALSE(torn.reused_tail);
    CHECK_FALSE(torn.why.empty());

    // A file that was never reused is read as before.
    SegmentScan plain = scan_segment(old_use, 11);
    CHECK(plain.records.size() == 6);
    CHECK_FALSE(plain.reused_tail);
    CHECK(plain.why.empty());
}

TEST_CASE("journal format: segment names carry the first seq, fixed-width lower-case hex",
          "[journal]") {
    CHECK(segment_name(1) == "seg-0000000000000001.log");
    CHECK(segment_name(0xabcdef0123456789ull) == "seg-abcdef0123456789.log");
    for (uint64_t s : {uint64_t{0}, uint64_t{1}, uint64_t{255}, ~uint64_t{0}})
        CHECK(segment_first_seq(segment_name(s)) == s);
    CHECK_FALSE(segment_first_seq("seg-000000000000000G.log"));
    CHECK_FALSE(segment_first_seq("seg-000000000000000A.log"));
    CHECK_FALSE(segment_first_seq("seg-0000000000000001.tmp"));
    CHECK_FALSE(segment_first_seq("seg-001.log"));
    CHECK_FALSE(segment_first_seq("spare.seg"));
    CHECK_FALSE(segment_first_seq("xeg-0000000000000001.log"));
}

TEST_CASE("journal format: the end marker names the next seq and is never a record", "[journal]") {
    const std::string m = end_marker(42);
    REQUIRE(m.size() == kHeaderSize);
    CHECK(is_end_marker(m, 42));
    CHECK(is_end_marker(m + "anything after it", 42));
    CHECK_FALSE(is_end_marker(m, 41));
    CHECK_FALSE(is_end_marker(m, 43));
    CHECK_FALSE(is_end_marker(m.substr(0, kHeaderSize - 1), 42));
    CHECK_FALSE(is_end_marker(std::string(kHeaderSize, '\0'), 0));
    for (size_t i = 0; i < m.size(); ++i) {
        std::string damaged = m;
        damaged[i] = static_cast<char>(damaged[i] ^ 0x20);
        INFO("byte " << i);
        CHECK_FALSE(is_end_marker(damaged, 42));
    }
    // A scan stops at it, as at anything that is no record.
    std::string seg;
    REQUIRE(encode(sample(41), seg));
    const size_t one = seg.size();
    seg += m;
    REQUIRE(encode(sample(99), seg));  // what an earlier use left after it
    const SegmentScan scan = scan_segment(seg, 41);
    CHECK(scan.records.size() == 1);
    CHECK(scan.valid_bytes == one);
    CHECK_FALSE(scan.reused_tail);
    // And a record's header is no end marker.
    CHECK_FALSE(is_end_marker(seg, 41));
    CHECK_FALSE(is_end_marker(seg, 42));
}

TEST_CASE(
    "journal format: find_record_after finds the next whole record numbered above, past "
    "garbage and an earlier use's records",
    "[journal]") {
    std::string seg;
    REQUIRE(encode(sample(5), seg));
    const size_t garbage_at = seg.size();
    seg += "CHJ1 not a record, CHJ1";  // magic bytes that start no valid record
    const size_t old_at = seg.size();
    REQUIRE(encode(sample(2), seg));  // numbered below: passed over
    const size_t next_at = seg.size();
    REQUIRE(encode(sample(6), seg));
    CHECK(find_record_after(seg, 0, 4) == std::optional<size_t>(0));
    CHECK(find_record_after(seg, 1, 4) == std::optional<size_t>(next_at));
    CHECK(find_record_after(seg, garbage_at, 5) == std::optional<size_t>(next_at));
    CHECK(find_record_after(seg, old_at, 1) == std::optional<size_t>(old_at));
    CHECK_FALSE(find_record_after(seg, 1, 6));
    CHECK_FALSE(find_record_after(seg, next_at + 1, 0));
    // A record cut short is no record.
    CHECK_FALSE(find_record_after(std::string_view(seg).substr(0, seg.size() - 1), 1, 5));
    CHECK_FALSE(find_record_after("", 0, 0));
    // Below the next segment's first seq only.
    CHECK_FALSE(find_record_after(seg, 1, 4, 6));
    CHECK(find_record_after(seg, 1, 4, 7) == std::optional<size_t>(next_at));
}

TEST_CASE(
    "journal format: read_segment reads past bad spots that whole later records follow, "
    "names offsets in the file, and stops below the next segment's first seq",
    "[journal]") {
    std::string seg;
    std::vector<size_t> at;
    for (uint64_t s = 1; s <= 5; ++s) {
        at.push_back(seg.size());
        REQUIRE(encode(sample(s), seg));
    }
    seg[at[1] + kHeaderSize + 1] ^= 0x01;  // record 2: bad checksum
    seg[at[3] + kHeaderSize + 1] ^= 0x01;  // record 4 too
    const SegmentRead read = read_segment(seg, 1);
    REQUIRE(read.records.size() == 3);
    CHECK(read.records[2].seq == 5);
    CHECK(read.next_seq == 6);
    CHECK(read.clean);
    CHECK(read.end == seg.size());
    REQUIRE(read.damage.size() == 2);
    CHECK(read.damage[1].offset == at[3]);
    CHECK(read.damage[1].why == "bad checksum at offset " + std::to_string(at[3]));
    CHECK(read.damage[1].first_lost == 4);
    CHECK(read.damage[1].resumes == 5);
    CHECK(read.damage[1].resume_offset == at[4]);

    // A record numbered from the next segment's first on is no record here.
    const SegmentRead bounded = read_segment(seg, 1, 5);
    CHECK(bounded.records.size() == 2);  // 1 and 3
    CHECK_FALSE(bounded.clean);
    CHECK(bounded.end == at[3]);
    CHECK(bounded.why == "bad checksum at offset " + std::to_string(at[3]));
    CHECK(bounded.next_seq == 4);
}
