// Fuzz target: the intake's field extractor (host/intake/JsonFields) against the SDK's reader
// (plugin-api/include/clayhook/json.hpp), on any bytes.
//
// Both must accept the same bodies and refuse the others with the same message at the same offset;
// for every path Value::at_path reaches in the body (and a few it does not), the extractor must
// find the same thing: same presence and kind, the same decoded string, canonical text byte for
// byte json::dump's, a raw span that is that value. Any difference is a finding (abort).
#include "../intake/JsonFieldsDiff.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    const std::string diff =
        clayhook::test::json_fields_mismatch(body, clayhook::test::paths_for(body, 200));
    if (!diff.empty()) {
        std::fprintf(stderr, "FUZZ CHECK FAILED: json_fields: %s\n  input: %zu bytes\n",
                     diff.c_str(), size);
        std::abort();
    }
    return 0;
}
