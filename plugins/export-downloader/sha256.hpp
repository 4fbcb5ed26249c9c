// SHA-256 (OpenSSL EVP), fed while streaming.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace clayhook::exportdl {

class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const char* data, size_t n);
    // The digest in lower-case hex; once.
    std::string hex();

  private:
    evp_md_ctx_st* ctx_;
};

std::string sha256_hex(std::string_view s);

}  // namespace clayhook::exportdl
