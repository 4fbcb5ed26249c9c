#pragma once

// Bytes on a real TCP connection exactly as a test writes them, from a
// chosen loopback address (127.0.0.0/8 gives distinct peers): for framing,
// smuggling and slow-client tests that an HTTP client library would refuse
// to send.

#include "support/Wait.h"  // wait_until, which tests of raw connections use too

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace clayhook::test {

class RawConnection {
  public:
    // Connects to 127.0.0.1:port from `from` (any 127.x.y.z); throws on failure.
    explicit RawConnection(uint16_t port, const std::string& from = "127.0.0.1");
    ~RawConnection();
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;

    bool send(std::string_view bytes);  // false once the peer has closed or reset
    void half_close();                  // no more bytes from us (shutdown SHUT_WR)
    // Reads until the peer closes, or `timeout` passes; `closed` says which.
    std::string read_until_close(std::chrono::milliseconds timeout, bool* closed = nullptr);
    // Reads until what came contains `text` (or close, or timeout).
    std::string read_until(std::string_view text, std::chrono::milliseconds timeout);
    // What is readable now, without waiting; `closed` set when the peer closed.
    std::string read_now(bool* closed = nullptr);

  private:
    int fd_ = -1;
    std::string pending_;
};

// The status codes of the HTTP responses in `bytes`, in order (bodies
// skipped by their Content-Length; 1xx answers included).
std::vector<int> statuses(const std::string& bytes);

}  // namespace clayhook::test
