#pragma once

// The intake journal's on-disk records: what one acknowledged delivery looks
// like in a segment file, how it is checked, and how a segment is read back
// after a crash. Pure functions over bytes; the files are Journal's business.
//
// A record (integers little-endian):
//
//   magic   u32  "CHJ1"
//   length  u32  bytes of the payload that follows the header
//   seq     u64  journal sequence number, one more than the record before
//   crc     u32  CRC-32C of the payload then seq (8 bytes)
//   payload:
//     received_at_ms i64, id (u16 len + bytes), source (u16 + bytes),
//     type (u16 + bytes), idempotency key (u32 + bytes),
//     delivery count (u16), each: plugin (u16 + bytes), order key (u32 + bytes),
//     body (u32 + bytes)
//
// A record is valid only when its magic, length, CRC and payload layout all
// agree; the first invalid one ends what a segment holds (a torn tail).
//
// Journal ends each write with an end marker the next write covers: a
// header of its own (integers little-endian), never a record:
//
//   magic   u32  "CHJE"
//   length  u32  0
//   seq     u64  the seq the next record will have
//   crc     u32  CRC-32C of seq (8 bytes)

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook::journal {

inline constexpr uint32_t kMagic = 0x314A4843;     // "CHJ1" little-endian
inline constexpr uint32_t kEndMagic = 0x454A4843;  // "CHJE" little-endian
inline constexpr size_t kHeaderSize = 20;          // a record's header, and an end marker
// A payload above this is refused at append and treated as damage when read.
inline constexpr uint32_t kMaxPayload = 64u * 1024 * 1024;

uint32_t crc32c(uint32_t crc, const void* data, size_t size) noexcept;

// One delivery as the journal keeps it (owning copies).
struct Record {
    uint64_t seq = 0;
    int64_t received_at_ms = 0;
    std::string id;
    std::string source;
    std::string type;
    std::string key;
    struct Delivery {
        std::string plugin;
        std::string order_key;
    };
    std::vector<Delivery> deliveries;
    std::string body;
};

// Appends the encoded record to `out`. False (nothing appended) when a field
// is longer than its length prefix allows or the payload exceeds kMaxPayload.
bool encode(const Record& r, std::string& out);
// The same in two steps, so that the costly part runs before the seq is
// known: encode_unsealed ignores r.seq (its CRC covers the payload only),
// seal writes the seq into the record at `record` and completes the CRC.
bool encode_unsealed(const Record& r, std::string& out);
void seal(char* record, uint64_t seq) noexcept;

struct Decoded {
    Record record;
    size_t size = 0;  // bytes the record took, header included
};

// Decodes the record at the start of `bytes`. nullopt when the bytes there
// are not a whole valid record (short, wrong magic, bad CRC, bad layout);
// `why` then says which.
std::optional<Decoded> decode(std::string_view bytes, std::string* why = nullptr);

// The end marker after the record `next_seq` - 1 (or, first in a segment,
// before the record `next_seq`): kHeaderSize bytes.
std::string end_marker(uint64_t next_seq);
// True when `bytes` starts with the end marker for `next_seq`.
bool is_end_marker(std::string_view bytes, uint64_t next_seq) noexcept;

// A segment file is named after the seq of its first record:
// "seg-<16 hex digits>.log", so that names sort in seq order.
std::string segment_name(uint64_t first_seq);
// The first seq a segment's name gives; nullopt when it is no segment name.
std::optional<uint64_t> segment_first_seq(std::string_view name);

// What a segment's bytes hold: every valid record from the start, and where
// the valid part ends (== bytes.size() when nothing is torn).
//
// A segment file may be reused: once all its records are indexed it can
// become the next segment, written over from offset 0 (SpareSegment::offer).
// Past the new records it then still holds the earlier use's bytes. A whole
// record among them has a seq below `first_seq` (the seq the file's name
// gives) or not above the record before it; the scan stops there and says
// `reused_tail`. The earlier use's bytes can also start mid-record; the scan
// then stops as at a torn tail, and the end marker before them (Journal)
// tells the two apart. Either way nothing there was acknowledged in this use
// of the file.
struct SegmentScan {
    std::vector<Record> records;
    size_t valid_bytes = 0;
    std::string why;           // why the scan stopped early ("" when it read everything)
    bool reused_tail = false;  // it stopped at a whole record of an earlier use
};
// `base`: the offset of `bytes` in the file, for the offsets `why` names.
SegmentScan scan_segment(std::string_view bytes, uint64_t first_seq = 0, size_t base = 0);

// The offset of the first whole valid record at or after `from` whose seq is
// above `after_seq` and below `below_seq`, found by its magic; nullopt when
// there is none. Where a scan stopped early without a clean end, such a
// record is there past damage to the file (a zeroed or garbled block), or
// past a hole in the last pass a power cut tore (its pages reach the disk
// in any order). An earlier use's records (seq below the file's first) are
// passed over by their header alone.
std::optional<size_t> find_record_after(std::string_view bytes, size_t from, uint64_t after_seq,
                                        uint64_t below_seq = UINT64_MAX);

// Everything a start reads back from one segment: scan_segment, then, past
// each bad spot that whole later records follow (find_record_after),
// scan_segment again. Recovery and `clayhook backup` both read segments so.
// `next_first`: the first seq of the segment after this one (0 when it is
// the last): no record here is numbered from it on.
struct SegmentRead {
    std::vector<Record> records;
    uint64_t next_seq = 0;  // the seq after the last record read (the first seq when none)
    // Where its last valid part ends: what a backup copies, and where a
    // torn tail is cut.
    size_t end = 0;
    // Whether `end` is a clean end (the end marker for the next seq, an
    // earlier use's whole record, zeros to the end of the file, or the end
    // of the file); false: a torn tail follows, `why` says what stopped the
    // scan there.
    bool clean = true;
    std::string why;
    struct Damage {
        size_t offset = 0;         // where the scan stopped
        std::string why;           // what it found there
        uint64_t first_lost = 0;   // the seq expected there
        uint64_t resumes = 0;      // the next whole record's seq (lost: first_lost..resumes-1)
        size_t resume_offset = 0;  // and its offset
    };
    std::vector<Damage> damage;
};
SegmentRead read_segment(std::string_view bytes, uint64_t first_seq, uint64_t next_first = 0);

}  // namespace clayhook::journal
