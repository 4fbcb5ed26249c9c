#include "console/ConsoleSessions.h"

#include "text/Text.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace clayhook {

namespace {

std::string random_hex(size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
        throw std::runtime_error("the system's random generator failed");
    return hex_lower(raw);
}

}  // namespace

ConsoleSessions::ConsoleSessions(std::chrono::milliseconds ttl, std::function<int64_t()> now_ms,
                                 size_t max_sessions)
    : ttl_(ttl), now_ms_(std::move(now_ms)), max_sessions_(max_sessions) {}

ConsoleSessions::Session ConsoleSessions::create() {
    Session s{random_hex(32), random_hex(32), now_ms_() + ttl_.count()};
    std::lock_guard lk(mu_);
    const int64_t now = now_ms_();
    std::erase_if(sessions_, [now](const auto& kv) { return kv.second.expires_ms <= now; });
    if (sessions_.size() >= max_sessions_) {
        auto oldest = sessions_.begin();
        for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
            if (it->second.expires_ms < oldest->second.expires_ms) oldest = it;
        sessions_.erase(oldest);
    }
    sessions_[s.id] = s;
    return s;
}

std::optional<ConsoleSessions::Session> ConsoleSessions::find(std::string_view id) {
    if (id.size() != 64) return std::nullopt;
    std::lock_guard lk(mu_);
    // The map lookup compares ids byte by byte; the id is 256 random bits, so
    // what a timing difference could tell is a prefix of no use.
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return std::nullopt;
    if (it->second.expires_ms <= now_ms_()) {
        sessions_.erase(it);
        return std::nullopt;
    }
    return it->second;
}

void ConsoleSessions::remove(std::string_view id) {
    std::lock_guard lk(mu_);
    auto it = sessions_.find(id);
    if (it != sessions_.end()) sessions_.erase(it);
}

bool ConsoleSessions::same(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

LoginLimiter::LoginLimiter(size_t max_failures, std::chrono::milliseconds window,
                           std::function<int64_t()> now_ms)
    : max_failures_(max_failures), window_(window), now_ms_(std::move(now_ms)) {}

int64_t LoginLimiter::blocked_for(const std::string& peer) {
    std::lock_guard lk(mu_);
    auto it = peers_.find(peer);
    if (it == peers_.end()) return 0;
    const int64_t until = it->second.first_ms + window_.count();
    const int64_t now = now_ms_();
    if (now >= until) {
        peers_.erase(it);
        return 0;
    }
    return it->second.failures >= max_failures_ ? until - now : 0;
}

void LoginLimiter::failed(const std::string& peer) {
    std::lock_guard lk(mu_);
    const int64_t now = now_ms_();
    auto& e = peers_[peer];
    if (e.failures == 0 || now >= e.first_ms + window_.count()) e = Entry{now, 0};
    ++e.failures;
    if (peers_.size() > 10000) peers_.clear();  // a flood of peers: forget, do not grow
}

void LoginLimiter::succeeded(const std::string& peer) {
    std::lock_guard lk(mu_);
    peers_.erase(peer);
}

}  // namespace clayhook
