// The ceiling for the intake benchmark: a bare Poco HTTPServer with the same
// thread settings as the host, that reads the body, checks its HMAC-SHA256
// and answers 200. No parse, no store. Prints "port=N" once listening; runs
// until SIGTERM/SIGINT.
//   bare-responder SECRET [THREADS [SYNC_FILE]]
// With SYNC_FILE, a durable design at its simplest, for scale: each
// verified body is written to SYNC_FILE and answered 200 only once an
// fdatasync after its write returned, one fdatasync for all the bodies that
// arrived during the one before (group commit, the first waiter syncs). The
// file is 256 MiB of zeros written and synced at start (as the journal's
// prepared segments), written over from its start again when full; nothing
// reads it back.
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace {

std::string g_secret;

class GroupSync {
  public:
    static constexpr off_t kBytes = off_t{256} << 20;

    explicit GroupSync(const std::string& path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd_ < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
        const std::string zeros(1 << 20, '\0');
        for (off_t at = 0; at < kBytes; at += static_cast<off_t>(zeros.size()))
            write_at(zeros, at);
        if (::fdatasync(fd_) != 0) throw std::runtime_error(std::strerror(errno));
    }
    ~GroupSync() { ::close(fd_); }

    // Returns once `data` is written and an fdatasync after it returned.
    void append(const std::string& data) {
        std::unique_lock lk(mu_);
        pending_ += data;
        const uint64_t mine = ++appended_;
        while (synced_ < mine) {
            if (syncing_) {
                cv_.wait(lk);
                continue;
            }
            syncing_ = true;
            std::string batch;
            batch.swap(pending_);
            const uint64_t upto = appended_;
            lk.unlock();
            if (offset_ + static_cast<off_t>(batch.size()) > kBytes) offset_ = 0;
            write_at(batch, offset_);
            offset_ += static_cast<off_t>(batch.size());
            if (::fdatasync(fd_) != 0) throw std::runtime_error(std::strerror(errno));
            lk.lock();
            syncing_ = false;
            synced_ = upto;
            cv_.notify_all();
        }
    }

  private:
    void write_at(const std::string& data, off_t at) {
        for (size_t done = 0; done < data.size();) {
            const ssize_t w = ::pwrite(fd_, data.data() + done, data.size() - done,
                                       at + static_cast<off_t>(done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) throw std::runtime_error(std::string("pwrite: ") + std::strerror(errno));
            done += static_cast<size_t>(w);
        }
    }

    int fd_ = -1;
    off_t offset_ = 0;  // the syncing thread's only
    std::mutex mu_;
    std::condition_variable cv_;
    std::string pending_;
    uint64_t appended_ = 0, synced_ = 0;
    bool syncing_ = false;
};

std::unique_ptr<GroupSync> g_sync;

class Handler : public Poco::Net::HTTPRequestHandler {
  public:
    void handleRequest(Poco::Net::HTTPServerRequest& req,
                       Poco::Net::HTTPServerResponse& resp) override {
        std::string body;
        if (req.hasContentLength()) body.reserve(static_cast<size_t>(req.getContentLength64()));
        char buf[16384];
        std::istream& in = req.stream();
        while (in) {
            in.read(buf, sizeof buf);
            body.append(buf, static_cast<size_t>(in.gcount()));
        }
        unsigned char md[32];
        unsigned int len = 0;
        HMAC(EVP_sha256(), g_secret.data(), static_cast<int>(g_secret.size()),
             reinterpret_cast<const unsigned char*>(body.data()), body.size(), md, &len);
        char hex[65];
        for (int i = 0; i < 32; ++i)
            std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
        const std::string& sig = req.get("x-clay-signature", "");
        bool ok = sig.size() == 64 && CRYPTO_memcmp(sig.data(), hex, 64) == 0;
        if (ok && g_sync) g_sync->append(body);
        resp.setStatus(ok ? Poco::Net::HTTPResponse::HTTP_OK
                          : Poco::Net::HTTPResponse::HTTP_UNAUTHORIZED);
        resp.setContentType("application/json");
        static const std::string okb = R"({"received":true})",
                                 bad = R"({"error":"verification failed"})";
        const std::string& b = ok ? okb : bad;
        resp.sendBuffer(b.data(), b.size());
    }
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
  public:
    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest&) override {
        return new Handler;
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bare-responder SECRET [THREADS [SYNC_FILE]]\n";
        return 2;
    }
    g_secret = argv[1];
    int threads = argc > 2 ? std::stoi(argv[2]) : 64;
    if (argc > 3) g_sync = std::make_unique<GroupSync>(argv[3]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);

    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0), 1024);
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(threads);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    Poco::ThreadPool pool(2, threads + 1);
    Poco::Net::HTTPServer server(new Factory, pool, socket, params);
    server.start();
    std::cout << "port=" << server.port() << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
    server.stopAll(false);
    pool.joinAll();
    return 0;
}
