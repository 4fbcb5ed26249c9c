#pragma once

// A delivery as Clay sends it to a source with the default hmac-sha256
// scheme: the body POSTed to 127.0.0.1, signed with the hex HMAC-SHA256 of
// its raw bytes in `x-clay-signature`. For the tests that drive a whole host.
#include <cstdint>
#include <string>

namespace clayhook::test {

struct SignedReply {
    int status = 0;    // the HTTP status; 0 when no answer came (refused, reset, timeout)
    std::string body;  // the answer's body
    std::string id;    // the event id of a 200 answer, else ""
};

// POSTs `body` to http://127.0.0.1:<port><path>, signed with `secret`. Never
// throws for a network failure (status 0).
SignedReply signed_post(uint16_t port, const std::string& secret, const std::string& body,
                        const std::string& path = "/webhooks/clay");

}  // namespace clayhook::test
