#include "worker/WorkerProtocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace clayhook::wire {

namespace {
void put_le(std::string& b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(std::string_view s, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
        v |= static_cast<uint64_t>(static_cast<unsigned char>(s[static_cast<size_t>(i)]))
             << (8 * i);
    return v;
}
constexpr size_t kHeader = 5;  // length, type
}  // namespace

Out::Out(Type t) {
    buf_.assign(4, '\0');
    buf_.push_back(static_cast<char>(t));
}
Out& Out::u8(uint8_t v) {
    buf_.push_back(static_cast<char>(v));
    return *this;
}
Out& Out::u32(uint32_t v) {
    put_le(buf_, v, 4);
    return *this;
}
Out& Out::i64(int64_t v) {
    put_le(buf_, static_cast<uint64_t>(v), 8);
    return *this;
}
Out& Out::f64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    put_le(buf_, bits, 8);
    return *this;
}
Out& Out::str(std::string_view s) {
    put_le(buf_, s.size(), 4);
    buf_.append(s);
    return *this;
}
const std::string& Out::done() {
    const uint64_t n = buf_.size() - 4;
    for (int i = 0; i < 4; ++i)
        buf_[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    return buf_;
}

std::string_view In::take(size_t n) {
    if (n > p_.size())
        throw ProtocolError("frame of type " + std::to_string(static_cast<int>(type_)) +
                            " ends early");
    std::string_view out = p_.substr(0, n);
    p_.remove_prefix(n);
    return out;
}
uint8_t In::u8() {
    return static_cast<uint8_t>(take(1)[0]);
}
uint32_t In::u32() {
    return static_cast<uint32_t>(get_le(take(4), 4));
}
int64_t In::i64() {
    return static_cast<int64_t>(get_le(take(8), 8));
}
double In::f64() {
    uint64_t bits = get_le(take(8), 8);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}
std::string_view In::str() {
    const uint32_t n = u32();
    return take(n);
}
void In::end() const {
    if (!p_.empty())
        throw ProtocolError("frame of type " + std::to_string(static_cast<int>(type_)) + " has " +
                            std::to_string(p_.size()) + " bytes too many");
}

bool write_frame(int fd, const std::string& frame) noexcept {
    size_t off = 0;
    while (off < frame.size()) {
        // MSG_NOSIGNAL: a peer that died is an error here, never a SIGPIPE
        // that would take the host down with its worker.
        ssize_t n = ::send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

bool Reader::ready() const {
    const size_t have = buf_.size() - pos_;
    if (have < 4) return false;
    const uint64_t n = get_le(std::string_view(buf_).substr(pos_, 4), 4);
    // Refused as soon as its length is known: nothing is buffered for a
    // frame that will never be accepted.
    if (n < 1 || n > kMaxFrame)
        throw ProtocolError("frame length " + std::to_string(n) + " out of bounds");
    return have >= 4 + n;
}

bool Reader::fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
    } else if (pos_ > (1u << 20)) {
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    char chunk[64 * 1024];
    for (;;) {
        ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == ECONNRESET || errno == EPIPE)) return false;
        if (n < 0) throw ProtocolError(std::string("read: ") + std::strerror(errno));
        if (n == 0) return false;
        buf_.append(chunk, static_cast<size_t>(n));
        return true;
    }
}

bool Reader::next(Type& type, std::string_view& payload) {
    while (!ready()) {
        if (!fill()) {
            if (buf_.size() != pos_) throw ProtocolError("stream ends inside a frame");
            return false;
        }
    }
    const uint64_t n = get_le(std::string_view(buf_).substr(pos_, 4), 4);
    type = static_cast<Type>(static_cast<unsigned char>(buf_[pos_ + 4]));
    payload = std::string_view(buf_).substr(pos_ + kHeader, n - 1);
    pos_ += 4 + n;
    return true;
}

}  // namespace clayhook::wire
