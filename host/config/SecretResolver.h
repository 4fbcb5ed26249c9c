#pragma once

#include "config/Config.h"

#include <string>
#include <vector>

namespace clayhook {

// Resolves secret references. The grammar:
//   ${NAME}            the environment variable NAME (must be set and non-empty)
//   ${NAME:-REF}       NAME when set, else REF (another reference)
//   file:PATH          the file's contents, one trailing newline dropped;
//                      a relative PATH resolves against the working directory.
//                      It must be a regular file (or a symlink to one) of at
//                      most 64 KiB: a FIFO, device or folder is refused
//                      without blocking or reading it, and no more than
//                      64 KiB + 1 bytes are ever read.
//   credential:NAME    a systemd credential (LoadCredential=NAME:PATH in the
//                      unit): the file $CREDENTIALS_DIRECTORY/NAME. Where
//                      that variable is unset (the CLI in an operator's
//                      shell) the file NAME in `credentials_fallback`, the
//                      config file's folder: /etc/clayhook/NAME for the
//                      package's layout. NAME is one file name (no '/').
//                      Read with the file: rules.
// Anything else is a secret written in clear, which is refused: secrets come
// from the environment or a file, so that the config can be shared and
// committed.
class SecretResolver {
  public:
    explicit SecretResolver(std::string base_dir, std::string credentials_fallback = "")
        : base_dir_(std::move(base_dir)), credentials_fallback_(std::move(credentials_fallback)) {}

    static bool is_reference(const std::string& text);

    // Never throws. A malformed reference gives error "syntax: …"; one that
    // does not resolve gives resolved=false and a reason that names the
    // variable or file, never a value.
    Secret resolve(const std::string& ref, const Position& pos);

    const std::string& base_dir() const { return base_dir_; }
    // Secret files readable by group or others, noticed while resolving.
    const std::vector<std::string>& warnings() const { return warnings_; }

  private:
    bool resolve_into(const std::string& ref, Secret& s, int depth);
    bool read_file(const std::string& path, Secret& s, const std::string& origin);
    std::string base_dir_;
    std::string credentials_fallback_;
    std::vector<std::string> warnings_;
};

}  // namespace clayhook
