#include "support/FakeServer.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

namespace clayhook::test {

namespace {

class Handler : public Poco::Net::HTTPRequestHandler {
  public:
    explicit Handler(std::shared_ptr<const FakeServer::Handle> h) : h_(std::move(h)) {}
    void handleRequest(Poco::Net::HTTPServerRequest& req,
                       Poco::Net::HTTPServerResponse& resp) override {
        try {
            (*h_)(req, resp);
        } catch (...) {
            // The client went away (a test that gave up early): nothing to do.
        }
    }

  private:
    std::shared_ptr<const FakeServer::Handle> h_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
  public:
    explicit Factory(std::shared_ptr<const FakeServer::Handle> h) : h_(std::move(h)) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest&) override {
        return new Handler(h_);
    }

  private:
    std::shared_ptr<const FakeServer::Handle> h_;
};

}  // namespace

FakeServer::FakeServer(Handle handle, const std::string& cert_file, const std::string& key_file,
                       int max_threads)
    : tls_(!cert_file.empty()) {
    Poco::Net::SocketAddress any_port("127.0.0.1", 0);
    Poco::Net::ServerSocket socket;
    if (tls_) {
        Poco::Net::Context::Ptr context =
            new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, key_file, cert_file, "",
                                   Poco::Net::Context::VERIFY_NONE);
        socket = Poco::Net::SecureServerSocket(any_port, 64, context);
    } else {
        socket = Poco::Net::ServerSocket(any_port);
    }
    port_ = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(false);
    params->setMaxThreads(max_threads);
    pool_ = std::make_unique<Poco::ThreadPool>(1, max_threads);
    server_ = std::make_unique<Poco::Net::HTTPServer>(
        new Factory(std::make_shared<const Handle>(std::move(handle))), *pool_, socket, params);
    server_->start();
}

FakeServer::~FakeServer() {
    server_->stopAll(true);
    server_.reset();
    pool_->joinAll();
}

}  // namespace clayhook::test
