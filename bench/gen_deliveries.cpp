// Writes N unique signed deliveries for the intake benchmark, one per line:
// <hex HMAC-SHA256 of the body>\t<body>. Bodies are ~0.5 KB
// enrichment.completed events shaped like docs/contracts.md, each
// with its own row_id, so none is a duplicate.
//   gen-deliveries N SECRET OUT [ROW_PREFIX]   (default row_)
#include <openssl/hmac.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    if (argc != 4 && argc != 5) {
        std::cerr << "usage: gen-deliveries N SECRET OUT [ROW_PREFIX]\n";
        return 2;
    }
    long n = std::stol(argv[1]);
    std::string secret = argv[2];
    std::ofstream out(argv[3], std::ios::binary);
    std::string prefix = argc == 5 ? argv[4] : "row_";
    char row[32];
    for (long i = 0; i < n; ++i) {
        std::snprintf(row, sizeof row, "%08ld", i);
        std::string r = row;
        std::string body =
            R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":")" + prefix + r +
            R"(","timestamp":"2026-11-26T12:00:42.042Z","data":{"email":"person)" + r +
            R"(@example.com","full_name":"Person )" + r + R"(","company":{"name":"Company )" + r +
            R"(","domain":"company)" + r +
            R"(.com","industry":"Software","employee_count":1200},"linkedin":{"url":"https://www.linkedin.com/in/person)" +
            r +
            R"(","title":"VP Sales"},"enrichment":{"provider":"clearbit","column":"Company Enrichment","credits_used":2}}})";
        unsigned char md[32];
        unsigned int len = 0;
        HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
             reinterpret_cast<const unsigned char*>(body.data()), body.size(), md, &len);
        char hex[65];
        for (int k = 0; k < 32; ++k)
            std::snprintf(hex + 2 * k, 3, "%02x", md[k]);
        out << hex << '\t' << body << '\n';
    }
    return out ? 0 : 1;
}
