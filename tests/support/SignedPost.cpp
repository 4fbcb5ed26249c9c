#include "support/SignedPost.h"

#include "verify/Verifier.h"

#include <clayhook/json.hpp>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

namespace clayhook::test {

SignedReply signed_post(uint16_t port, const std::string& secret, const std::string& body,
                        const std::string& path) {
    SignedReply r;
    try {
        Poco::Net::HTTPClientSession s("127.0.0.1", port);
        Poco::Net::HTTPRequest req("POST", path, Poco::Net::HTTPMessage::HTTP_1_1);
        req.set("x-clay-signature", hmac_sha256_hex(secret, body));
        req.setContentType("application/json");
        req.setContentLength64(static_cast<Poco::Int64>(body.size()));
        s.sendRequest(req) << body;
        Poco::Net::HTTPResponse resp;
        Poco::StreamCopier::copyToString(s.receiveResponse(resp), r.body);
        r.status = static_cast<int>(resp.getStatus());
    } catch (const Poco::Exception&) {
        return SignedReply{};
    }
    if (r.status == 200) {
        try {
            r.id = json::parse(r.body).get_string("id", "");
        } catch (const std::exception&) {
            r.id.clear();
        }
    }
    return r;
}

}  // namespace clayhook::test
