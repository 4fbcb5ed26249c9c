#pragma once

// The console's sign-in: the admin token exchanged for a session (a random
// id in an HttpOnly cookie, and a CSRF token the pages send back on every
// state-changing request), and the rate limit on wrong tokens. In memory:
// a restart signs everyone out.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace clayhook {

class ConsoleSessions {
  public:
    struct Session {
        std::string id;    // the cookie's value: 32 random bytes, hex
        std::string csrf;  // 32 random bytes, hex
        int64_t expires_ms = 0;
    };

    // `now_ms`: the clock (Unix ms), passed in so tests can move it.
    ConsoleSessions(std::chrono::milliseconds ttl, std::function<int64_t()> now_ms,
                    size_t max_sessions = 1000);

    // A new session (the oldest one goes when there are max_sessions).
    Session create();
    // The live session with this id; an expired one is forgotten.
    std::optional<Session> find(std::string_view id);
    void remove(std::string_view id);
    std::chrono::milliseconds ttl() const { return ttl_; }

    // True when both are equal, in time independent of where they differ.
    static bool same(std::string_view a, std::string_view b);

  private:
    std::chrono::milliseconds ttl_;
    std::function<int64_t()> now_ms_;
    size_t max_sessions_;
    std::mutex mu_;
    std::map<std::string, Session, std::less<>> sessions_;
};

// Wrong tokens per peer: after `max_failures` within `window`, sign-in from
// that peer is refused until the window has passed since the first of them.
class LoginLimiter {
  public:
    LoginLimiter(size_t max_failures, std::chrono::milliseconds window,
                 std::function<int64_t()> now_ms);
    // 0 when the peer may try now; else the ms until it may.
    int64_t blocked_for(const std::string& peer);
    void failed(const std::string& peer);
    void succeeded(const std::string& peer);

  private:
    struct Entry {
        int64_t first_ms = 0;
        size_t failures = 0;
    };
    size_t max_failures_;
    std::chrono::milliseconds window_;
    std::function<int64_t()> now_ms_;
    std::mutex mu_;
    std::map<std::string, Entry> peers_;
};

}  // namespace clayhook
