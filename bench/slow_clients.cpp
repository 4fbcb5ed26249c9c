// Slow-client benchmark driver (not a test): an honest sender on 127.0.0.1
// posts signed deliveries, one connection each, 100 a second for SECONDS,
// first alone, then under attack, and prints both runs' latencies and errors,
// and what happened to the attacker. MODE:
//   heads (default): SLOW connections from 127.0.0.2, each sending a header
//     line every second and never finishing its request;
//   bodies: SLOW connections from 127.0.0.10 on (32 per address, the
//     default per-peer cap), each announcing a 1 MiB body and sending all of
//     it but its last byte as fast as the host reads, then nothing.
// Either way a connection cut or refused is opened again.
//   slow-clients PORT SECRET SLOW SECONDS [heads|bodies]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

int connect_from(const char* from, uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, from, &local.sin_addr);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        ::close(fd);
        return -1;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

std::string hmac_hex(const std::string& key, const std::string& body) {
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += hex[mac[i] >> 4];
        out += hex[mac[i] & 15];
    }
    return out;
}

// One signed POST on a fresh connection; the status, or 0 on no answer
// within 10 s.
int post(uint16_t port, const std::string& secret, int n) {
    std::string body = R"({"event":"enrichment.completed","table_id":"t_bench","row_id":"slow_)" +
                       std::to_string(n) + "_" + std::to_string(::getpid()) +
                       R"(","timestamp":"2026-12-05T12:00:00.000Z","data":{"email":"a@b.c"}})";
    std::string req =
        "POST /webhooks/clay HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nX-Clay-Signature: " +
        hmac_hex(secret, body) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
        body;
    int fd = connect_from("127.0.0.1", port);
    if (fd < 0) return 0;
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string got;
    char buf[4096];
    auto until = Clock::now() + std::chrono::seconds(10);
    while (got.find("\r\n") == std::string::npos && Clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r <= 0) break;
        got.append(buf, static_cast<size_t>(r));
    }
    ::close(fd);
    return got.size() >= 12 && got.compare(0, 9, "HTTP/1.1 ") == 0 ? std::atoi(got.c_str() + 9) : 0;
}

struct Run {
    std::vector<double> ms;
    int errors = 0;
};

Run honest(uint16_t port, const std::string& secret, int seconds, int offset) {
    Run r;
    auto end = Clock::now() + std::chrono::seconds(seconds);
    auto next = Clock::now();
    for (int i = 0; Clock::now() < end; ++i) {
        std::this_thread::sleep_until(next);
        next += std::chrono::milliseconds(10);  // 100 a second
        auto t0 = Clock::now();
        int status = post(port, secret, offset + i);
        r.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (status != 200) ++r.errors;
    }
    std::sort(r.ms.begin(), r.ms.end());
    return r;
}

double pct(const Run& r, double p) {
    if (r.ms.empty()) return 0;
    return r
        .ms[std::min(r.ms.size() - 1, static_cast<size_t>(p * static_cast<double>(r.ms.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5 && argc != 6) {
        std::fprintf(stderr, "usage: slow-clients PORT SECRET SLOW SECONDS [heads|bodies]\n");
        return 2;
    }
    auto port = static_cast<uint16_t>(std::atoi(argv[1]));
    std::string secret = argv[2];
    int slow = std::atoi(argv[3]);
    int seconds = std::atoi(argv[4]);
    const std::string mode = argc == 6 ? argv[5] : "heads";
    if (mode != "heads" && mode != "bodies") {
        std::fprintf(stderr, "slow-clients: MODE is heads or bodies, not '%s'\n", mode.c_str());
        return 2;
    }
    const bool bodies = mode == "bodies";
    constexpr size_t kBody = 1 << 20;
    const std::string filler(kBody - 1, 'x');  // all of a body but its last byte

    Run alone = honest(port, secret, seconds, 0);

    std::atomic<bool> stop{false};
    std::atomic<long> opened{0}, refused{0}, cut{0};
    std::thread attacker([&] {
        std::vector<int> fds(static_cast<size_t>(slow), -1);
        std::vector<size_t> sent(fds.size(), 0);  // bodies: filler bytes sent so far
        std::vector<std::string> from(fds.size(), "127.0.0.2");
        if (bodies)
            for (size_t i = 0; i < from.size(); ++i)
                from[i] = "127.0.0." + std::to_string(10 + i / 32);
        long line = 0;
        while (!stop) {
            auto round = Clock::now();
            // Bodies: rounds every 10 ms, so the bytes go as fast as read.
            const auto pause = bodies ? std::chrono::milliseconds(10) : std::chrono::seconds(1);
            for (size_t i = 0; i < fds.size() && !stop; ++i) {
                int& fd = fds[i];
                if (fd >= 0) {
                    char buf[512];
                    ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                    bool gone = r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
                    if (r > 0 &&
                        std::string(buf, static_cast<size_t>(r)).find(" 503 ") != std::string::npos)
                        ++refused, gone = true;
                    else if (gone)
                        ++cut;
                    bool failed = gone;
                    if (!gone && !bodies) {
                        std::string more = "X-Slow-" + std::to_string(line) + ": x\r\n";
                        failed = ::send(fd, more.data(), more.size(), MSG_NOSIGNAL) <= 0;
                    } else if (!gone && sent[i] < filler.size()) {
                        const ssize_t n =
                            ::send(fd, filler.data() + sent[i], filler.size() - sent[i],
                                   MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n > 0)
                            sent[i] += static_cast<size_t>(n);
                        else
                            failed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
                    }
                    if (failed) {
                        ::close(fd);
                        fd = -1;
                    }
                }
                if (fd < 0) {
                    fd = connect_from(from[i].c_str(), port);
                    if (fd >= 0) {
                        std::string start = "POST /webhooks/clay HTTP/1.1\r\nHost: bench\r\n";
                        if (bodies)
                            start +=
                                "X-Clay-Signature: 00\r\nContent-Length: " + std::to_string(kBody) +
                                "\r\n\r\n";
                        ::send(fd, start.data(), start.size(), MSG_NOSIGNAL);
                        sent[i] = 0;
                        ++opened;
                    }
                }
            }
            ++line;
            std::this_thread::sleep_until(round + pause);
        }
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
    });
    std::this_thread::sleep_for(std::chrono::seconds(3));  // the attack in full swing
    Run attacked = honest(port, secret, seconds, 1'000'000);
    stop = true;
    attacker.join();

    std::printf(
        "slow-client benchmark: %d slow connections (%s) from %s; signed deliveries "
        "from 127.0.0.1, 100/s for %d s alone and %d s under attack, one connection "
        "each; %zu and %zu sent\n",
        slow, bodies ? "1 MiB bodies but their last byte" : "header lines",
        bodies ? "127.0.0.10 on, 32 each" : "127.0.0.2", seconds, seconds, alone.ms.size(),
        attacked.ms.size());
    std::printf("%-16s %9s %9s %9s %7s\n", "", "p50_ms", "p99_ms", "max_ms", "errors");
    for (auto [name, r] :
         {std::pair<const char*, Run*>{"alone", &alone}, {"under attack", &attacked}})
        std::printf("%-16s %9.2f %9.2f %9.2f %7d\n", name, pct(*r, 0.5), pct(*r, 0.99),
                    r->ms.empty() ? 0 : r->ms.back(), r->errors);
    std::printf(
        "attacker: %ld connections opened, %ld refused with 503, %ld cut "
        "(deadline or close)\n",
        opened.load(), refused.load(), cut.load());
    std::printf("RESULT alone_p99_ms=%.2f attacked_p99_ms=%.2f attacked_errors=%d ratio_p99=%.2f\n",
                pct(alone, 0.99), pct(attacked, 0.99), attacked.errors,
                pct(alone, 0.99) > 0 ? pct(attacked, 0.99) / pct(alone, 0.99) : 0);
    return 0;
}
