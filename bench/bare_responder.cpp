// The ceiling for the intake benchmark: a bare Poco HTTPServer with the same
// thread settings as the host, that reads the body, checks its HMAC-SHA256
// and answers 200. No parse, no store. Prints "port=N" once listening; runs
// until SIGTERM/SIGINT.
//   bare-responder SECRET [THREADS]
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

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>

namespace {

std::string g_secret;

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
        std::cerr << "usage: bare-responder SECRET [THREADS]\n";
        return 2;
    }
    g_secret = argv[1];
    int threads = argc > 2 ? std::stoi(argv[2]) : 64;
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
