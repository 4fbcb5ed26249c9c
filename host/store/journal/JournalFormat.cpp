#include "store/journal/JournalFormat.h"

#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace clayhook::journal {

namespace {

constexpr std::array<uint32_t, 256> make_table() {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli, reflected
        t[i] = c;
    }
    return t;
}
constexpr auto kTable = make_table();

void put_u16(std::string& out, uint16_t v) {
    char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
    out.append(b, 2);
}
void put_u32(std::string& out, uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i)
        b[i] = static_cast<char>(v >> (8 * i));
    out.append(b, 4);
}
void put_u64(std::string& out, uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i)
        b[i] = static_cast<char>(v >> (8 * i));
    out.append(b, 8);
}
uint64_t get_le(const char* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

// Reads the payload's fields in order; any overrun marks it bad.
class Reader {
  public:
    explicit Reader(std::string_view s) : s_(s) {}
    bool ok() const { return ok_; }
    bool done() const { return pos_ == s_.size(); }
    uint64_t num(int n) {
        if (!ok_ || s_.size() - pos_ < static_cast<size_t>(n)) return ok_ = false, 0;
        uint64_t v = get_le(s_.data() + pos_, n);
        pos_ += n;
        return v;
    }
    std::string str(int len_bytes) {
        const uint64_t n = num(len_bytes);
        if (!ok_ || s_.size() - pos_ < n) return ok_ = false, std::string();
        std::string v(s_.substr(pos_, n));
        pos_ += n;
        return v;
    }

  private:
    std::string_view s_;
    size_t pos_ = 0;
    bool ok_ = true;
};

bool fits(std::string_view s, uint64_t max) {
    return s.size() <= max;
}

uint32_t crc32c_table(uint32_t crc, const unsigned char* p, size_t size) noexcept {
    while (size--)
        crc = kTable[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const unsigned char* p,
                                                        size_t size) noexcept {
    uint64_t c = crc;
    for (; size >= 8; size -= 8, p += 8) {
        uint64_t v;
        std::memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    crc = static_cast<uint32_t>(c);
    for (; size > 0; --size, ++p)
        crc = __builtin_ia32_crc32qi(crc, *p);
    return crc;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

uint32_t crc32c(uint32_t crc, const void* data, size_t size) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
    if (kHaveSse42) return ~crc32c_sse42(~crc, p, size);
#endif
    return ~crc32c_table(~crc, p, size);
}

bool encode_unsealed(const Record& r, std::string& out) {
    if (!fits(r.id, 0xffff) || !fits(r.source, 0xffff) || !fits(r.type, 0xffff) ||
        !fits(r.key, 0xffffffffu) || r.deliveries.size() > 0xffff || !fits(r.body, kMaxPayload))
        return false;
    for (const auto& d : r.deliveries)
        if (!fits(d.plugin, 0xffff) || !fits(d.order_key, 0xffffffffu)) return false;
    const size_t start = out.size();
    out.resize(start + kHeaderSize);  // filled in below, once the payload is there
    put_u64(out, static_cast<uint64_t>(r.received_at_ms));
    put_u16(out, static_cast<uint16_t>(r.id.size()));
    out += r.id;
    put_u16(out, static_cast<uint16_t>(r.source.size()));
    out += r.source;
    put_u16(out, static_cast<uint16_t>(r.type.size()));
    out += r.type;
    put_u32(out, static_cast<uint32_t>(r.key.size()));
    out += r.key;
    put_u16(out, static_cast<uint16_t>(r.deliveries.size()));
    for (const auto& d : r.deliveries) {
        put_u16(out, static_cast<uint16_t>(d.plugin.size()));
        out += d.plugin;
        put_u32(out, static_cast<uint32_t>(d.order_key.size()));
        out += d.order_key;
    }
    put_u32(out, static_cast<uint32_t>(r.body.size()));
    out += r.body;
    const size_t payload = out.size() - start - kHeaderSize;
    if (payload > kMaxPayload) {
        out.resize(start);
        return false;
    }
    std::string header;
    header.reserve(kHeaderSize);
    put_u32(header, kMagic);
    put_u32(header, static_cast<uint32_t>(payload));
    put_u64(header, 0);
    put_u32(header, crc32c(0, out.data() + start + kHeaderSize, payload));
    std::memcpy(out.data() + start, header.data(), kHeaderSize);
    return true;
}

void seal(char* record, uint64_t seq) noexcept {
    std::string s;
    put_u64(s, seq);
    std::memcpy(record + 8, s.data(), 8);
    const auto partial = static_cast<uint32_t>(get_le(record + 16, 4));
    const uint32_t crc = crc32c(partial, record + 8, 8);
    s.clear();
    put_u32(s, crc);
    std::memcpy(record + 16, s.data(), 4);
}

bool encode(const Record& r, std::string& out) {
    const size_t start = out.size();
    if (!encode_unsealed(r, out)) return false;
    seal(out.data() + start, r.seq);
    return true;
}

std::optional<Decoded> decode(std::string_view bytes, std::string* why) {
    auto fail = [&](const char* reason) -> std::optional<Decoded> {
        if (why != nullptr) *why = reason;
        return std::nullopt;
    };
    if (bytes.size() < kHeaderSize) return fail("short header");
    if (get_le(bytes.data(), 4) != kMagic) return fail("bad magic");
    const uint64_t length = get_le(bytes.data() + 4, 4);
    if (length > kMaxPayload) return fail("length out of range");
    if (bytes.size() - kHeaderSize < length) return fail("short payload");
    const std::string_view payload = bytes.substr(kHeaderSize, length);
    uint32_t crc = crc32c(0, payload.data(), payload.size());
    crc = crc32c(crc, bytes.data() + 8, 8);
    if (crc != static_cast<uint32_t>(get_le(bytes.data() + 16, 4))) return fail("bad checksum");

    Decoded d;
    d.size = kHeaderSize + length;
    Record& r = d.record;
    r.seq = get_le(bytes.data() + 8, 8);
    Reader in(payload);
    r.received_at_ms = static_cast<int64_t>(in.num(8));
    r.id = in.str(2);
    r.source = in.str(2);
    r.type = in.str(2);
    r.key = in.str(4);
    const uint64_t n = in.num(2);
    for (uint64_t i = 0; in.ok() && i < n; ++i) {
        Record::Delivery del;
        del.plugin = in.str(2);
        del.order_key = in.str(4);
        r.deliveries.push_back(std::move(del));
    }
    r.body = in.str(4);
    if (!in.ok() || !in.done()) return fail("bad payload layout");
    return d;
}

std::string end_marker(uint64_t next_seq) {
    std::string out;
    put_u32(out, kEndMagic);
    put_u32(out, 0);
    put_u64(out, next_seq);
    put_u32(out, crc32c(0, out.data() + 8, 8));
    return out;
}

bool is_end_marker(std::string_view bytes, uint64_t next_seq) noexcept {
    if (bytes.size() < kHeaderSize) return false;
    return get_le(bytes.data(), 4) == kEndMagic && get_le(bytes.data() + 4, 4) == 0 &&
           get_le(bytes.data() + 8, 8) == next_seq &&
           get_le(bytes.data() + 16, 4) == crc32c(0, bytes.data() + 8, 8);
}

std::string segment_name(uint64_t first_seq) {
    char name[40];
    std::snprintf(name, sizeof name, "seg-%016" PRIx64 ".log", first_seq);
    return name;
}

std::optional<uint64_t> segment_first_seq(std::string_view name) {
    if (name.size() != 24 || name.substr(0, 4) != "seg-" || name.substr(20) != ".log")
        return std::nullopt;
    uint64_t seq = 0;
    for (const char c : name.substr(4, 16)) {
        int digit;
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (c >= 'a' && c <= 'f')
            digit = c - 'a' + 10;
        else
            return std::nullopt;  // segment_name() writes lower-case hex only
        seq = seq << 4 | static_cast<uint64_t>(digit);
    }
    return seq;
}

SegmentScan scan_segment(std::string_view bytes, uint64_t first_seq, size_t base) {
    SegmentScan out;
    size_t pos = 0;
    uint64_t previous = 0;
    while (pos < bytes.size()) {
        std::string why;
        auto d = decode(bytes.substr(pos), &why);
        if (!d) {
            out.why = why + " at offset " + std::to_string(base + pos);
            break;
        }
        const uint64_t seq = d->record.seq;
        if (seq < first_seq || (!out.records.empty() && seq <= previous)) {
            out.reused_tail = true;
            out.why = "record " + std::to_string(seq) +
                      " of an earlier use of the file at offset " + std::to_string(base + pos);
            break;
        }
        previous = seq;
        pos += d->size;
        out.records.push_back(std::move(d->record));
    }
    out.valid_bytes = pos;
    return out;
}

std::optional<size_t> find_record_after(std::string_view bytes, size_t from, uint64_t after_seq,
                                        uint64_t below_seq) {
    const char magic[4] = {'C', 'H', 'J', '1'};
    static_assert(kMagic == 0x314A4843);
    for (size_t pos = bytes.find(std::string_view(magic, 4), from); pos != std::string_view::npos;
         pos = bytes.find(std::string_view(magic, 4), pos + 1)) {
        if (bytes.size() - pos < kHeaderSize) break;
        const uint64_t seq = get_le(bytes.data() + pos + 8, 8);
        if (seq <= after_seq || seq >= below_seq) continue;  // no CRC for those
        if (decode(bytes.substr(pos))) return pos;
    }
    return std::nullopt;
}

SegmentRead read_segment(std::string_view bytes, uint64_t first_seq, uint64_t next_first) {
    SegmentRead out;
    out.next_seq = first_seq;
    const uint64_t below = next_first != 0 ? next_first : UINT64_MAX;
    for (size_t start = 0;;) {
        SegmentScan scan = scan_segment(bytes.substr(start), first_seq, start);
        if (!scan.records.empty()) out.next_seq = scan.records.back().seq + 1;
        for (Record& r : scan.records)
            out.records.push_back(std::move(r));
        out.end = start + scan.valid_bytes;
        // Each pass ends its records with an end marker (written over by the
        // next pass): the one for the seq after the last record read is a
        // clean end, whatever an earlier use of a reused file left after it.
        // So is a whole record of an earlier use, or zeros to the end of the
        // file (a segment written in advance). Nothing torn there.
        if (out.end == bytes.size() || scan.reused_tail ||
            is_end_marker(bytes.substr(out.end), out.next_seq) ||
            bytes.find_first_not_of('\0', out.end) == std::string_view::npos)
            return out;
        const auto later = find_record_after(bytes, out.end + 1, out.next_seq - 1, below);
        if (!later) {
            out.clean = false;
            out.why = std::move(scan.why);
            return out;
        }
        // Whole records numbered after the bad spot: they are read too.
        // Damage to the file, or a hole in a last pass torn by a power cut
        // (recovery tells what it can; see Journal::recover).
        const uint64_t resumes = get_le(bytes.data() + *later + 8, 8);
        out.damage.push_back({out.end, std::move(scan.why), out.next_seq, resumes, *later});
        out.next_seq = resumes;
        start = *later;
    }
}

}  // namespace clayhook::journal
