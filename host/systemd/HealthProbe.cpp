#include "systemd/HealthProbe.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>

#include <istream>
#include <memory>

namespace clayhook {

bool probe_healthz(const std::string& host, uint16_t port, bool tls,
                   std::chrono::milliseconds timeout, std::string& why) {
    try {
        std::unique_ptr<Poco::Net::HTTPClientSession> session;
        if (tls) {
            static const Poco::Net::Context::Ptr context = new Poco::Net::Context(
                Poco::Net::Context::TLS_CLIENT_USE, "", Poco::Net::Context::VERIFY_NONE);
            session = std::make_unique<Poco::Net::HTTPSClientSession>(host, port, context);
        } else {
            session = std::make_unique<Poco::Net::HTTPClientSession>(host, port);
        }
        const Poco::Timespan t(static_cast<long>(timeout.count() / 1000),
                               static_cast<long>(timeout.count() % 1000) * 1000);
        session->setTimeout(t, t, t);
        Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/healthz",
                                       Poco::Net::HTTPMessage::HTTP_1_1);
        request.set("Connection", "close");
        session->sendRequest(request);
        Poco::Net::HTTPResponse response;
        std::istream& body = session->receiveResponse(response);
        body.ignore(4096);
        return true;
    } catch (const Poco::Exception& e) {
        why = "GET /healthz on " + host + ":" + std::to_string(port) + ": " + e.displayText();
    } catch (const std::exception& e) {
        why = "GET /healthz on " + host + ":" + std::to_string(port) + ": " + e.what();
    }
    return false;
}

}  // namespace clayhook
