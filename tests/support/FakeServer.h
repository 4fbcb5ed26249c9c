#pragma once

// The HTTP(S) server under every fake in tests/fakes/: Poco's HTTPServer on
// 127.0.0.1, port 0 (the kernel picks one), TLS when a certificate is given,
// no keep-alive, every request handed to one function on a pool thread. An
// exception leaving the function (a client that gave up) is swallowed.
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace Poco {
class ThreadPool;
namespace Net {
class HTTPServer;
}
}  // namespace Poco

namespace clayhook::test {

class FakeServer {
  public:
    using Handle =
        std::function<void(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse&)>;

    // `cert_file`/`key_file` (PEM): serve https:// when set.
    FakeServer(Handle handle, const std::string& cert_file = "", const std::string& key_file = "",
               int max_threads = 8);
    ~FakeServer();  // stops accepting, ends the requests in progress, joins the threads
    FakeServer(const FakeServer&) = delete;
    FakeServer& operator=(const FakeServer&) = delete;

    uint16_t port() const { return port_; }
    bool tls() const { return tls_; }

  private:
    std::unique_ptr<Poco::ThreadPool> pool_;  // outlives server_
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    uint16_t port_ = 0;
    bool tls_ = false;
};

}  // namespace clayhook::test
