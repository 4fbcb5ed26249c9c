// Load driver for the crash and lag benchmarks: sends every line of a
// deliveries file (as gen-deliveries writes it: <hex HMAC-SHA256>\t<body>)
// to the intake over keep-alive connections, one thread each, and keeps
// resending a line until the host acknowledges it (a 200 with an id, new or
// duplicate). A connection error, a timeout, a 429 or a 5xx (503 included)
// only means "not yet": the same line goes again after a short wait, so a
// host that is killed and restarted under load still ends up acknowledging
// the whole file. Any other answer (a 4xx: bad signature, malformed body)
// gives the line up.
//
//   delivery-driver FILE [--port P | --url URL] [--conns N] [--rate R]
//                   [--acked OUT] [--duration S] [--timeout S] [--give-up S]
//                   [--retry-wait-ms MS]
//
//   --port P         http://127.0.0.1:P/webhooks/clay (default port 8080)
//   --url URL        http://HOST:PORT/PATH instead
//   --conns N        connections, one thread each (default 8)
//   --rate R         requests per second over all connections, retries
//                    included, on an even schedule (a late sender catches
//                    up); 0 = as fast as the connections go (default 0)
//   --acked OUT      appends "<line index>\t<id>\tnew|duplicate" per
//                    acknowledged line, written as it happens
//   --duration S     stop taking new lines after S seconds (default: none;
//                    the run ends when every line is acknowledged or given up)
//   --timeout S      connect/send/receive timeout per request (default 5)
//   --give-up S      stop retrying a line after S seconds (default 300)
//   --retry-wait-ms  wait before resending after an error (default 100; a
//                    503's Retry-After is honoured up to 1 s)
//
// SIGTERM/SIGINT stop it: no new line is started, requests in flight finish
// (or time out), the acked file is complete, the summary is printed, exit 0.
// The last line on stdout:
//   RESULT sent=… acked=… duplicates=… retries=… non2xx=… errors=… failed=…
//          lines=… seconds=… rps=… p50_ms=… p99_ms=…
// sent: requests sent (attempts); acked: lines acknowledged; duplicates: of
// those, answered "duplicate" (an earlier attempt had been stored but its
// answer was lost); retries: attempts past a line's first; non2xx: answers
// other than 2xx; errors: attempts with no usable answer (connection
// refused/reset, timeout, a 200 without an id); failed: lines given up;
// lines: lines in FILE; seconds: wall time of the run; rps: acked lines per
// second; p50_ms/p99_ms: latency of the requests that got a 200.
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timespan.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
    std::string file;
    std::string host = "127.0.0.1";
    int port = 8080;
    std::string path = "/webhooks/clay";
    int conns = 8;
    double rate = 0;
    std::string acked;
    double duration = 0;
    double timeout = 5;
    double give_up = 300;
    int retry_wait_ms = 100;
};

struct Line {
    std::string sig;
    std::string body;
};

struct Totals {
    std::atomic<long> sent{0}, acked{0}, duplicates{0}, retries{0}, non2xx{0}, errors{0}, failed{0};
};

std::atomic<bool> g_stop{false};

[[noreturn]] void usage(const std::string& why) {
    if (!why.empty()) std::cerr << "delivery-driver: " << why << "\n";
    std::cerr << "usage: delivery-driver FILE [--port P | --url URL] [--conns N] [--rate R]\n"
                 "                       [--acked OUT] [--duration S] [--timeout S]\n"
                 "                       [--give-up S] [--retry-wait-ms MS]\n";
    std::exit(2);
}

bool parse_url(const std::string& url, Options& o) {
    const std::string scheme = "http://";
    if (url.compare(0, scheme.size(), scheme) != 0) return false;
    std::string rest = url.substr(scheme.size());
    auto slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    o.path = slash == std::string::npos ? "/" : rest.substr(slash);
    auto colon = hostport.rfind(':');
    if (colon == std::string::npos) {
        o.host = hostport;
        o.port = 80;
    } else {
        o.host = hostport.substr(0, colon);
        o.port = std::stoi(hostport.substr(colon + 1));
    }
    return !o.host.empty() && o.port > 0 && o.port < 65536;
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(a + " needs a value");
            return argv[++i];
        };
        try {
            if (a == "--port") {
                o.port = std::stoi(value());
            } else if (a == "--url") {
                if (!parse_url(value(), o)) usage("--url must be http://HOST:PORT/PATH");
            } else if (a == "--conns") {
                o.conns = std::stoi(value());
            } else if (a == "--rate") {
                o.rate = std::stod(value());
            } else if (a == "--acked") {
                o.acked = value();
            } else if (a == "--duration") {
                o.duration = std::stod(value());
            } else if (a == "--timeout") {
                o.timeout = std::stod(value());
            } else if (a == "--give-up") {
                o.give_up = std::stod(value());
            } else if (a == "--retry-wait-ms") {
                o.retry_wait_ms = std::stoi(value());
            } else if (a == "-h" || a == "--help") {
                usage("");
            } else if (!a.empty() && a[0] == '-') {
                usage("unknown option " + a);
            } else if (o.file.empty()) {
                o.file = a;
            } else {
                usage("one FILE only");
            }
        } catch (const std::logic_error&) {
            usage("bad value for " + a);
        }
    }
    if (o.file.empty()) usage("FILE is required");
    if (o.conns < 1 || o.rate < 0 || o.timeout <= 0 || o.give_up <= 0 || o.retry_wait_ms < 0 ||
        o.port < 1 || o.port > 65535)
        usage("a value is out of range");
    return o;
}

std::vector<Line> read_lines(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        std::cerr << "delivery-driver: cannot read " << file << "\n";
        std::exit(1);
    }
    std::vector<Line> lines;
    std::string s;
    while (std::getline(in, s)) {
        auto tab = s.find('\t');
        if (tab == std::string::npos) continue;
        lines.push_back({s.substr(0, tab), s.substr(tab + 1)});
    }
    return lines;
}

// Sleeps until t, in short steps so a stop is noticed; false if stopped.
bool sleep_until(Clock::time_point t) {
    while (!g_stop.load(std::memory_order_relaxed)) {
        auto now = Clock::now();
        if (now >= t) return true;
        std::this_thread::sleep_for(std::min<Clock::duration>(t - now, 50ms));
    }
    return false;
}

// The value of "key":"…" in a flat JSON answer, or "".
std::string json_string(const std::string& doc, const std::string& key) {
    std::string mark = "\"" + key + "\":\"";
    auto at = doc.find(mark);
    if (at == std::string::npos) return "";
    at += mark.size();
    auto end = doc.find('"', at);
    return end == std::string::npos ? "" : doc.substr(at, end - at);
}

class AckLog {
  public:
    explicit AckLog(const std::string& path) {
        if (path.empty()) return;
        f_ = std::fopen(path.c_str(), "a");
        if (f_ == nullptr) {
            std::cerr << "delivery-driver: cannot open " << path << "\n";
            std::exit(1);
        }
    }
    ~AckLog() {
        if (f_ != nullptr) std::fclose(f_);
    }
    AckLog(const AckLog&) = delete;
    AckLog& operator=(const AckLog&) = delete;
    // Flushed at once: the file is whole even if the driver is killed.
    void add(size_t index, const std::string& id, bool duplicate) {
        if (f_ == nullptr) return;
        std::lock_guard lock(mu_);
        std::fprintf(f_, "%zu\t%s\t%s\n", index, id.c_str(), duplicate ? "duplicate" : "new");
        std::fflush(f_);
    }

  private:
    std::FILE* f_ = nullptr;
    std::mutex mu_;
};

class Driver {
  public:
    Driver(const Options& o, const std::vector<Line>& lines, AckLog& log)
        : o_(o), lines_(lines), log_(log), start_(Clock::now()) {
        if (o.rate > 0)
            interval_ = std::chrono::duration_cast<Clock::duration>(
                std::chrono::duration<double>(1.0 / o.rate));
    }

    // One connection: takes the next line, sends it until acknowledged.
    void run_connection(std::vector<double>& latencies_ms) {
        Poco::Net::HTTPClientSession session(o_.host, static_cast<Poco::UInt16>(o_.port));
        session.setKeepAlive(true);
        session.setTimeout(Poco::Timespan(static_cast<long>(o_.timeout * 1e6)));
        while (!g_stop.load(std::memory_order_relaxed)) {
            size_t i = next_.fetch_add(1);
            if (i >= lines_.size()) return;
            send_until_acked(session, i, latencies_ms);
        }
    }

    const Totals& totals() const { return totals_; }
    Clock::time_point start() const { return start_; }

  private:
    enum class Outcome { acked, retry, give_up };

    void send_until_acked(Poco::Net::HTTPClientSession& session, size_t i,
                          std::vector<double>& latencies_ms) {
        auto first = Clock::now();
        for (int attempt = 0;; ++attempt) {
            if (!pace()) return;
            if (attempt > 0) totals_.retries.fetch_add(1);
            Clock::duration wait = std::chrono::milliseconds(o_.retry_wait_ms);
            Outcome r = attempt_once(session, i, latencies_ms, wait);
            if (r == Outcome::acked) return;
            if (r == Outcome::give_up ||
                Clock::now() - first > std::chrono::duration<double>(o_.give_up)) {
                totals_.failed.fetch_add(1);
                return;
            }
            if (!sleep_until(Clock::now() + wait)) return;
        }
    }

    // Waits for this request's slot on the even schedule; false if stopped.
    bool pace() {
        if (g_stop.load(std::memory_order_relaxed)) return false;
        if (interval_ == Clock::duration::zero()) return true;
        auto slot = static_cast<Clock::rep>(slot_.fetch_add(1));
        return sleep_until(start_ + interval_ * slot);
    }

    Outcome attempt_once(Poco::Net::HTTPClientSession& session, size_t i,
                         std::vector<double>& latencies_ms, Clock::duration& wait) {
        const Line& line = lines_[i];
        auto t0 = Clock::now();
        int status = 0;
        std::string answer, retry_after;
        try {
            Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, o_.path,
                                       Poco::Net::HTTPMessage::HTTP_1_1);
            req.setKeepAlive(true);
            req.setContentType("application/json");
            req.set("x-clay-signature", line.sig);
            req.setContentLength64(static_cast<Poco::Int64>(line.body.size()));
            totals_.sent.fetch_add(1);
            std::ostream& out = session.sendRequest(req);
            out.write(line.body.data(), static_cast<std::streamsize>(line.body.size()));
            out.flush();
            if (!out) throw Poco::IOException("send failed");
            Poco::Net::HTTPResponse resp;
            std::istream& in = session.receiveResponse(resp);
            Poco::StreamCopier::copyToString(in, answer);
            status = resp.getStatus();
            retry_after = resp.get("Retry-After", "");
        } catch (const Poco::Exception&) {
            return fail_connection(session);
        } catch (const std::exception&) {
            return fail_connection(session);
        }
        if (status >= 200 && status < 300) {
            std::string id = json_string(answer, "id");
            if (status != 200 || id.empty()) {
                totals_.errors.fetch_add(1);  // not an acknowledgement we can use
                return Outcome::retry;
            }
            bool duplicate = answer.find("\"duplicate\":true") != std::string::npos;
            latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            totals_.acked.fetch_add(1);
            if (duplicate) totals_.duplicates.fetch_add(1);
            log_.add(i, id, duplicate);
            return Outcome::acked;
        }
        totals_.non2xx.fetch_add(1);
        if (status == 429 || status >= 500) {
            if (!retry_after.empty()) {
                try {
                    auto s = std::chrono::duration<double>(std::stod(retry_after));
                    wait = std::chrono::duration_cast<Clock::duration>(
                        std::min<std::chrono::duration<double>>(s, 1s));
                } catch (const std::exception&) {
                }
            }
            return Outcome::retry;
        }
        return Outcome::give_up;
    }

    Outcome fail_connection(Poco::Net::HTTPClientSession& session) {
        totals_.errors.fetch_add(1);
        try {
            session.reset();
        } catch (...) {
        }
        return Outcome::retry;
    }

    const Options& o_;
    const std::vector<Line>& lines_;
    AckLog& log_;
    Clock::time_point start_;
    Clock::duration interval_{0};
    std::atomic<size_t> next_{0};
    std::atomic<unsigned long long> slot_{0};
    Totals totals_;
};

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    auto k = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_args(argc, argv);
    // Signals go to one thread; the workers never see them. SIGPIPE: a host
    // killed mid-request must show up as an error, not end the driver.
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);

    std::vector<Line> lines = read_lines(o.file);
    AckLog log(o.acked);
    Driver driver(o, lines, log);

    std::atomic<bool> done{false};
    std::thread watcher([&] {
        auto deadline = driver.start() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(o.duration));
        timespec tick{0, 100 * 1000 * 1000};
        while (!done.load()) {
            if (sigtimedwait(&set, nullptr, &tick) > 0) g_stop = true;
            if (o.duration > 0 && Clock::now() >= deadline) g_stop = true;
        }
    });

    std::vector<std::vector<double>> latencies(static_cast<size_t>(o.conns));
    std::vector<std::thread> workers;
    for (int c = 0; c < o.conns; ++c)
        workers.emplace_back(
            [&driver, &latencies, c] { driver.run_connection(latencies[static_cast<size_t>(c)]); });
    for (auto& w : workers)
        w.join();
    double seconds = std::chrono::duration<double>(Clock::now() - driver.start()).count();
    done = true;
    watcher.join();

    std::vector<double> all;
    for (auto& l : latencies)
        all.insert(all.end(), l.begin(), l.end());
    const Totals& t = driver.totals();
    std::printf(
        "RESULT sent=%ld acked=%ld duplicates=%ld retries=%ld non2xx=%ld errors=%ld failed=%ld "
        "lines=%zu seconds=%.3f rps=%.0f p50_ms=%.3f p99_ms=%.3f\n",
        t.sent.load(), t.acked.load(), t.duplicates.load(), t.retries.load(), t.non2xx.load(),
        t.errors.load(), t.failed.load(), lines.size(), seconds,
        seconds > 0 ? static_cast<double>(t.acked.load()) / seconds : 0.0, percentile(all, 50),
        percentile(all, 99));
    std::fflush(stdout);
    return 0;
}
