#pragma once

// The wire between the host and a plugin worker process (isolation: process):
// frames over a Unix stream socket pair. Each frame is a 4-byte little-endian
// length (of what follows), a 1-byte type, and the type's fields: integers in
// little-endian, strings as a 4-byte length and the bytes. Both sides parse
// strictly: a short, oversized or trailing frame is a protocol error, and
// the host kills a worker that sends one (it may be a plugin scribbling
// over memory).
//
//   host → worker                       worker → host
//   hello   name, path, config, threads  ready   kind, version, abi, batch,
//   call    id, events                           concurrency, patterns
//   reply   request id, rc, value        failed  reason
//                                        result  call id, results
//                                        log     level, message
//                                        metric  counter?, name, labels, value
//                                        request id, op, key, value, at_ms
//
// The host closes its end to stop a worker: the worker destroys the plugin
// instance once its calls have returned, and exits.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace clayhook::wire {

enum class Type : uint8_t {
    hello = 1,
    call = 2,
    reply = 3,
    ready = 10,
    failed = 11,
    result = 12,
    log = 13,
    metric = 14,
    request = 15,
};

// Service requests a worker makes on a plugin's behalf (answered by a reply).
enum class Op : uint8_t { kv_get = 1, kv_put = 2, kv_delete = 3, deliver_again_at = 4 };

// The largest frame either side accepts: bodies are capped far below this by
// the intake (listener.max_body), a batch carries at most a few hundred.
inline constexpr size_t kMaxFrame = 256u * 1024 * 1024;

class ProtocolError : public std::exception {
  public:
    explicit ProtocolError(std::string what) : what_(std::move(what)) {}
    const char* what() const noexcept override { return what_.c_str(); }

  private:
    std::string what_;
};

// Builds one frame.
class Out {
  public:
    explicit Out(Type t);
    Out& u8(uint8_t v);
    Out& u32(uint32_t v);
    Out& i32(int32_t v) { return u32(static_cast<uint32_t>(v)); }
    Out& i64(int64_t v);
    Out& f64(double v);
    Out& str(std::string_view s);
    // The frame with its length in front.
    const std::string& done();

  private:
    std::string buf_;
};

// Reads one frame's fields in order; throws ProtocolError past its end.
class In {
  public:
    In(Type type, std::string_view payload) : type_(type), p_(payload) {}
    Type type() const { return type_; }
    uint8_t u8();
    uint32_t u32();
    int32_t i32() { return static_cast<int32_t>(u32()); }
    int64_t i64();
    double f64();
    std::string_view str();
    // Throws unless every byte was read.
    void end() const;

  private:
    std::string_view take(size_t n);
    Type type_;
    std::string_view p_;
};

// Writes a whole frame to a socket (retrying short writes and EINTR; never
// raising SIGPIPE). False when the peer is gone. Not thread-safe: callers
// hold their own lock.
bool write_frame(int fd, const std::string& frame) noexcept;

// Reads frames from a stream socket into an internal buffer.
class Reader {
  public:
    explicit Reader(int fd) : fd_(fd) {}
    // Blocks until a whole frame arrived. False at end of stream (the peer
    // closed or died); throws ProtocolError on a malformed frame or a read
    // error. `frame` is valid until the next call.
    bool next(Type& type, std::string_view& payload);
    // Reads what is available without blocking (after poll said readable);
    // false at end of stream.
    bool fill();
    // A whole frame is buffered. Throws ProtocolError as soon as a frame's
    // length is out of bounds.
    bool ready() const;

  private:
    int fd_;
    std::string buf_;
    size_t pos_ = 0;  // start of the unread part of buf_
};

}  // namespace clayhook::wire
