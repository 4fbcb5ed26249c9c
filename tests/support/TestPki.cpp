#include "support/TestPki.h"

#include "support/Subprocess.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <tuple>

namespace clayhook::test {

std::string missing_tool(const std::string& path, const std::string& package) {
    if (::access(path.c_str(), X_OK) == 0) return "";
    return path + " missing: install the " + package + " package (apt-get install " + package + ")";
}

void require_tool(const std::string& path, const std::string& package) {
    if (auto why = missing_tool(path, package); !why.empty()) FAIL(why);
}

void openssl(const std::vector<std::string>& args) {
    require_tool("/usr/bin/openssl", "openssl");
    std::vector<std::string> argv{"/usr/bin/openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, {}, std::chrono::seconds(60));
    if (r.code != 0) FAIL("openssl failed (exit " << r.code << "):\n" << r.out << r.err);
}

TestPki::TestPki() {
    ca = dir.file("ca.pem");
    ca_key = dir.file("ca.key");
    good_cert = dir.file("good.pem");
    good_key = dir.file("good.key");
    other_cert = dir.file("other.pem");
    other_key = dir.file("other.key");
    auto ext_good = dir.write("good.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    auto ext_other = dir.write("other.ext", "subjectAltName=DNS:other.example\n");
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=clayhook test CA"});
    for (auto [cert, key, ext, cn] :
         {std::tuple{good_cert, good_key, ext_good, "localhost"},
          std::tuple{other_cert, other_key, ext_other, "other.example"}}) {
        openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", cert + ".csr", "-subj", std::string("/CN=") + cn});
        openssl({"x509", "-req", "-in", cert + ".csr", "-CA", ca, "-CAkey", ca_key,
                 "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext});
    }
}

const TestPki& TestPki::shared() {
    static const TestPki pki;
    return pki;
}

}  // namespace clayhook::test
