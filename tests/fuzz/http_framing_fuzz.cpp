// Fuzz target: the intake's HTTP/1.1 request framing (host/http/RequestParser).
//
// The first input byte picks a piece size; the rest is a request as it would arrive on a
// connection. Checked, besides the sanitizers:
//   - parse_head never reads past its input, and `done` consumes at most the input;
//   - a head that is `done` was `incomplete` (never an error) at every shorter length tried;
//   - a chunked body decodes to the same status, body and end whether it arrives whole or in
//     pieces, and never past the cap.
#include "http/RequestParser.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace clayhook;

namespace {

struct Decoded {
    ChunkedDecoder::Status status = ChunkedDecoder::Status::more;
    std::string body;
    size_t consumed = 0;
};

Decoded decode(std::string_view in, size_t step, uint64_t cap) {
    ChunkedDecoder d(cap);
    Decoded out;
    size_t pos = 0;
    while (pos < in.size()) {
        size_t used = 0;
        out.status = d.feed(in.substr(pos, step), used, out.body);
        if (used > std::min(step, in.size() - pos)) std::abort();
        pos += used;
        out.consumed = pos;
        if (out.status != ChunkedDecoder::Status::more) break;
        if (used == 0) std::abort();  // `more` must have taken everything it was given
    }
    if (out.body.size() > cap) std::abort();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const size_t step = 1 + data[0] % 17;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

    HeadLimits limits;
    limits.max_head_bytes = 2048;
    limits.max_target_bytes = 512;
    limits.max_fields = 20;
    HeadParse whole = parse_head(in, limits);
    std::string_view body = in;
    if (whole.state == HeadParse::State::done) {
        if (whole.consumed == 0 || whole.consumed > in.size()) std::abort();
        for (size_t cut : {whole.consumed - 1, whole.consumed / 2, whole.consumed / 3}) {
            if (parse_head(in.substr(0, cut), limits).state != HeadParse::State::incomplete)
                std::abort();
        }
        body = in.substr(whole.consumed);
    } else if (whole.state == HeadParse::State::error) {
        if (whole.status < 400 || whole.status > 505 || whole.error.empty()) std::abort();
    }

    // The chunked decoder on what follows the head (or on the whole input).
    const uint64_t cap = 1024;
    Decoded one = decode(body, body.size() + 1, cap);
    Decoded pieces = decode(body, step, cap);
    if (one.status != pieces.status) std::abort();
    if (one.status == ChunkedDecoder::Status::done &&
        (one.body != pieces.body || one.consumed != pieces.consumed))
        std::abort();
    return 0;
}
