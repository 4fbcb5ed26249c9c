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
