// The event-loop server on its own, over real sockets, with a service whose
// answers come later from another thread (as the store's commit does): what
// the loops owe each connection, in which order, and what stop() waits for.
// The framing, deadlines and caps it shares with HttpServer are run against
// both servers in intake_test.cpp and intake_hardening_test.cpp.
#include "http/EventServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "support/RawHttp.h"

#include <catch2/catch.hpp>

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

using namespace clayhook;
using namespace std::chrono_literals;
using test::RawConnection;
using test::statuses;
using test::wait_until;

namespace {

// Answers every request with its own path, once the test releases it (or at
// once when not holding), from a thread of its own. Records the threads
// handle_async ran on.
class LaterService final : public HttpService {
  public:
    ~LaterService() override {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (worker_.joinable()) worker_.join();
    }

    Admission admit(const HttpRequest& req, BodyFraming, uint64_t) override {
        Admission a;
        if (req.path == "/now") a.answer = HttpReply(200, "now", "text/plain");
        a.max_body = 1 << 20;
        return a;
    }
    HttpReply too_large(const HttpRequest&, uint64_t) override { return HttpReply(413, "big"); }
    HttpReply handle(const HttpRequest&, std::string, const std::shared_ptr<const void>&) override {
        FAIL("the event server calls handle_async");
        return {};
    }
    void handle_async(const HttpRequest& req, std::string body, const std::shared_ptr<const void>&,
                      Respond respond) override {
        char name[16] = {};
        pthread_getname_np(pthread_self(), name, sizeof name);
        if (req.path == "/throw") throw std::runtime_error("the service failed");
        std::lock_guard lk(mu_);
        threads_.insert(name);
        calls_++;
        queue_.push_back({req.path + (body.empty() ? "" : ":" + body), std::move(respond)});
        if (!worker_.joinable()) worker_ = std::thread([this] { work(); });
        cv_.notify_all();
    }

    void hold(bool h) {
        {
            std::lock_guard lk(mu_);
            held_ = h;
        }
        cv_.notify_all();
    }
    size_t waiting() {
        std::lock_guard lk(mu_);
        return queue_.size();
    }
    int calls() {
        std::lock_guard lk(mu_);
        return calls_;
    }
    std::set<std::string> threads() {
        std::lock_guard lk(mu_);
        return threads_;
    }
    // Answers the waiting requests newest first.
    void reverse() {
        std::lock_guard lk(mu_);
        std::reverse(queue_.begin(), queue_.end());
    }

  private:
    void work() {
        std::unique_lock lk(mu_);
        while (!stop_) {
            cv_.wait(lk, [&] { return stop_ || (!held_ && !queue_.empty()); });
            while (!held_ && !queue_.empty()) {
                auto item = std::move(queue_.front());
                queue_.pop_front();
                lk.unlock();
                item.second(HttpReply(200, item.first, "text/plain"));
                lk.lock();
            }
        }
    }

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::pair<std::string, Respond>> queue_;
    std::set<std::string> threads_;
    int calls_ = 0;
    bool held_ = false, stop_ = false;
    std::thread worker_;
};

struct Rig {
    std::ostringstream log_out;
    Logger log{log_out, Level::debug};
    Metrics metrics;
    LaterService service;
    std::unique_ptr<EventServer> server;
    explicit Rig(int loops = 2, HttpServerOptions o = {}) {
        o.name = "test";
        o.loops = loops;
        server = std::make_unique<EventServer>(o, service, log, metrics);
        server->start();
    }
};

std::string get(const std::string& path, const std::string& extra = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n";
}

}  // namespace

TEST_CASE("event server: answers that come later reach their own connections",
          "[http][event-server]") {
    Rig rig;
    rig.service.hold(true);
    constexpr int kConns = 24;
    std::vector<std::unique_ptr<RawConnection>> conns;
    for (int i = 0; i < kConns; ++i) {
        conns.push_back(std::make_unique<RawConnection>(rig.server->port()));
        conns.back()->send(get("/c" + std::to_string(i), "Connection: close\r\n"));
    }
    // Every request is with the service and none is answered while it holds.
    REQUIRE(wait_until([&] { return rig.service.waiting() == kConns; }));
    bool closed = true;
    CHECK(conns[0]->read_now(&closed).empty());
    CHECK_FALSE(closed);
    rig.service.reverse();  // answered in the other order than they came
    rig.service.hold(false);
    for (int i = 0; i < kConns; ++i) {
        std::string got = conns[i]->read_until_close(10s);
        CHECK(statuses(got) == std::vector<int>{200});
        CHECK_THAT(got, Catch::EndsWith("\r\n\r\n/c" + std::to_string(i)));
    }
    // The loops ran the service (both of them, as connections go round).
    CHECK(rig.service.threads() == std::set<std::string>{"test-0", "test-1"});
}

TEST_CASE("event server: a pipelined request waits for the answer before it",
          "[http][event-server]") {
    Rig rig(1);
    rig.service.hold(true);
    RawConnection c(rig.server->port());
    c.send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy" + get("/b") +
           get("/now", "Connection: close\r\n"));
    REQUIRE(wait_until([&] { return rig.service.waiting() == 1; }));
    // The second is not read (nor handed over) while the first is owed.
    CHECK(rig.service.calls() == 1);
    rig.service.hold(false);
    std::string got = c.read_until_close(10s);
    CHECK(statuses(got) == std::vector<int>{200, 200, 200});
    const size_t a = got.find("/a:xy"), b = got.find("/b"), now = got.find("now");
    CHECK(a < b);
    CHECK(b < now);
    CHECK(rig.service.calls() == 2);  // /now was answered at admit
}

TEST_CASE("event server: a service that throws gets a 500 and the connection goes on",
          "[http][event-server]") {
    Rig rig(1);
    RawConnection c(rig.server->port());
    c.send(get("/throw") + get("/after", "Connection: close\r\n"));
    std::string got = c.read_until_close(10s);
    CHECK(statuses(got) == std::vector<int>{500, 200});
    CHECK_THAT(rig.log_out.str(), Catch::Contains("the service failed"));
}

TEST_CASE("event server: stop waits for the answers still owed, then closes",
          "[http][event-server]") {
    Rig rig;
    rig.service.hold(true);
    RawConnection busy(rig.server->port());
    busy.send(get("/slow"));
    RawConnection idle(rig.server->port());
    idle.send(get("/now"));
    REQUIRE(idle.read_until("now", 10s).find("now") != std::string::npos);
    REQUIRE(wait_until([&] { return rig.service.waiting() == 1; }));
    auto stopped = std::async(std::launch::async, [&] { rig.server->stop(50ms); });
    // The idle connection is closed at once; stop() itself waits for the
    // answer the service owes (it calls back into the server's loops).
    bool closed = false;
    idle.read_until_close(10s, &closed);
    CHECK(closed);
    CHECK(stopped.wait_for(300ms) == std::future_status::timeout);
    rig.service.hold(false);
    CHECK(stopped.wait_for(10s) == std::future_status::ready);
    stopped.get();
    // The drain ended before the answer came: the connection was closed
    // without it, never answered twice or after the close.
    closed = false;
    std::string got = busy.read_until_close(10s, &closed);
    CHECK(closed);
    CHECK(statuses(got).empty());
}

TEST_CASE("event server: a client that does not read its answers is cut, others are served",
          "[http][event-server]") {
    HttpServerOptions o;
    o.io_timeout = 300ms;
    Rig rig(1, o);
    // A request for a large answer, sent again and again and never read:
    // the socket's buffers fill, and the loop must not wait on them.
    RawConnection stuck(rig.server->port());
    std::string big(256 * 1024, 'x');
    std::string req =
        "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(big.size()) +
        "\r\n\r\n" + big;
    std::atomic<int> sent{0};
    auto sender = std::async(std::launch::async, [&] {
        for (int i = 0; i < 400; ++i) {  // 100 MiB: far past what the buffers hold
            if (!stuck.send(req)) return false;
            ++sent;
        }
        return true;
    });
    REQUIRE(wait_until([&] { return sent.load() >= 8; }, 10s));
    RawConnection other(rig.server->port());
    other.send(get("/other", "Connection: close\r\n"));
    CHECK(statuses(other.read_until_close(10s)) == std::vector<int>{200});
    // The stuck one is closed once a send made no progress for io_timeout;
    // the client's blocked send then fails.
    REQUIRE(sender.wait_for(20s) == std::future_status::ready);
    CHECK_FALSE(sender.get());
}

TEST_CASE("event server: TLS is refused at construction", "[http][event-server]") {
    std::ostringstream out;
    Logger log{out, Level::info};
    Metrics metrics;
    LaterService service;
    HttpServerOptions o;
    o.tls.cert_file = "c.pem";
    o.tls.key_file = "k.pem";
    CHECK_THROWS_WITH(EventServer(o, service, log, metrics), Catch::Contains("TLS"));
}

TEST_CASE("event server: a peer closing with the last bytes of its body gets its 400 at once",
          "[http][event-server]") {
    HttpServerOptions o;
    o.body_timeout = 60s;  // a missed close would show as a wait for this
    Rig rig(1, o);
    RawConnection c(rig.server->port());
    // The 100 Continue says the server has read the head and waits for the
    // body; the rest comes with the FIN, which raises no edge of its own.
    c.send("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    REQUIRE(c.read_until("100 Continue", 10s).find("100 Continue") != std::string::npos);
    c.send("abc");
    c.half_close();
    bool closed = false;
    std::string got = c.read_until_close(10s, &closed);
    CHECK(closed);
    CHECK(statuses(got) == std::vector<int>{400});
    CHECK(rig.metrics.value("clayhook_test_incomplete_requests_total", "") == 1);
    CHECK(rig.metrics.value("clayhook_test_connections_timed_out_total", "phase=\"body\"") == 0);
    CHECK(rig.service.calls() == 0);
}

TEST_CASE("event server: a client pipelining many requests is served in turns, all in order",
          "[http][event-server]") {
    Rig rig(1);
    RawConnection c(rig.server->port());
    // 500 requests answered at admission, in one send: more than one turn
    // of the loop (kBurst) takes.
    std::string many;
    for (int i = 0; i < 499; ++i)
        many += get("/now");
    many += get("/last", "Connection: close\r\n");
    c.send(many);
    bool closed = false;
    std::string got = c.read_until_close(20s, &closed);
    CHECK(closed);
    auto st = statuses(got);
    CHECK(st.size() == 500);
    CHECK(std::count(st.begin(), st.end(), 200) == 500);
    CHECK_THAT(got, Catch::EndsWith("/last"));
}
