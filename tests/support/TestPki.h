#pragma once

// The test PKI: a throwaway CA and two server certificates it signed, one for
// localhost and 127.0.0.1 (`good`), one for another name (`other`), all EC
// P-256, made with the openssl command. And that command itself, for tests
// that need other keys. Without /usr/bin/openssl the test FAILs, saying what
// to install: a missing tool is never a silent pass.
#include "support/TempDir.h"

#include <string>
#include <vector>

namespace clayhook::test {

// FAILs the test unless `path` is an executable file; names the package to install.
void require_tool(const std::string& path, const std::string& package);
// What require_tool fails with: "" when `path` is an executable file.
std::string missing_tool(const std::string& path, const std::string& package);

// Runs /usr/bin/openssl with `args`; FAILs the test (with its output) when
// the command is missing or fails.
void openssl(const std::vector<std::string>& args);

struct TestPki {
    TempDir dir;
    std::string ca, ca_key;             // the CA certificate (for ca_file / SSL_CERT_FILE)
    std::string good_cert, good_key;    // CN=localhost, SAN DNS:localhost, IP:127.0.0.1
    std::string other_cert, other_key;  // CN=other.example, SAN DNS:other.example

    TestPki();  // makes them (a few hundred ms)

    // One set for the whole test run, made on first use (read-only: share it).
    static const TestPki& shared();
};

}  // namespace clayhook::test
