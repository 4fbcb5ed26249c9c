#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace clayhook {

// One GET /healthz to the host's own listener, as a client would make it
// (TLS when the listener has it, without checking its certificate: it is
// our own socket). True on any complete HTTP answer within `timeout`: a 503
// from a full listener still shows that it accepts and answers. Else `why`
// says what failed.
bool probe_healthz(const std::string& host, uint16_t port, bool tls,
                   std::chrono::milliseconds timeout, std::string& why);

}  // namespace clayhook
