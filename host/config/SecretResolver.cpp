#include "config/SecretResolver.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace clayhook {

namespace {
bool env_name(const std::string& s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
    return true;
}
constexpr size_t kMaxSecretBytes = 64 * 1024;

const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a file";
}

// Overwrites what was read of a file that is then refused: it may be a secret.
void wipe(std::string& s) {
    ::explicit_bzero(s.data(), s.size());
    s.clear();
}

// Closes a descriptor at scope end.
struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// Reads a secret file into `out`: a regular file (or a symlink to one) of at
// most kMaxSecretBytes. Opened non-blocking, so that a FIFO without a writer
// cannot block the open, and checked with fstat on the opened descriptor
// before anything is read, so that /dev/zero, a FIFO or a folder is refused
// without reading it; then at most kMaxSecretBytes + 1 bytes are read, so a
// file that is huge (or grows while it is read) costs no more than that. On
// failure `error` says why, naming the path and never a byte of the content,
// and `out` holds nothing.
bool read_secret_file(const fs::path& path, std::string& out, struct stat& st, std::string& error) {
    out.clear();
    Fd f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)};
    if (f.fd < 0) {
        error = "not resolved: cannot read " + path.string() + ": " + std::strerror(errno);
        return false;
    }
    if (::fstat(f.fd, &st) != 0) {
        error = "not resolved: cannot read " + path.string() + ": " + std::strerror(errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        error = "not resolved: " + path.string() + " is not a regular file (" +
                file_kind(st.st_mode) + ")";
        return false;
    }
    out.resize(kMaxSecretBytes + 1);
    size_t got = 0;
    while (got < out.size()) {
        ssize_t n = ::read(f.fd, out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = "not resolved: cannot read " + path.string() + ": " + std::strerror(errno);
            wipe(out);
            return false;
        }
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    if (got > kMaxSecretBytes) {
        error = "not resolved: " + path.string() + " is larger than 64 KiB";
        wipe(out);
        return false;
    }
    out.resize(got);
    return true;
}
}  // namespace

bool SecretResolver::is_reference(const std::string& text) {
    return (text.rfind("${", 0) == 0 && text.back() == '}') || text.rfind("file:", 0) == 0 ||
           text.rfind("credential:", 0) == 0;
}

Secret SecretResolver::resolve(const std::string& ref, const Position& pos) {
    Secret s;
    s.ref = ref;
    s.pos = pos;
    if (!is_reference(ref)) {
        s.error =
            "syntax: a secret is written as ${ENV_VAR}, file:PATH or credential:NAME, never in "
            "clear in the config";
        return s;
    }
    s.resolved = resolve_into(ref, s, 0);
    if (!s.resolved) s.value.clear();
    return s;
}

bool SecretResolver::resolve_into(const std::string& ref, Secret& s, int depth) {
    if (depth > 4) {
        s.error = "syntax: references nested too deeply";
        return false;
    }
    if (ref.rfind("${", 0) == 0 && ref.size() >= 3 && ref.back() == '}') {
        std::string inner = ref.substr(2, ref.size() - 3);
        std::string name = inner, fallback;
        bool has_fallback = false;
        if (auto p = inner.find(":-"); p != std::string::npos) {
            name = inner.substr(0, p);
            fallback = inner.substr(p + 2);
            has_fallback = true;
        }
        if (!env_name(name)) {
            s.error = "syntax: '" + name + "' is not an environment variable name";
            return false;
        }
        const char* v = std::getenv(name.c_str());
        if (v != nullptr && *v != '\0') {
            s.value = v;
            s.origin = "env " + name;
            return true;
        }
        if (!has_fallback) {
            s.error = "not resolved: environment variable " + name + " is not set";
            return false;
        }
        if (!is_reference(fallback)) {
            s.error =
                "syntax: the fallback after ':-' must be ${VAR}, file:PATH or credential:NAME";
            return false;
        }
        if (!resolve_into(fallback, s, depth + 1)) {
            if (s.error.rfind("syntax:", 0) != 0)
                s.error = "not resolved: environment variable " + name + " is not set, and " +
                          s.error.substr(std::strlen("not resolved: "));
            return false;
        }
        return true;
    }
    if (ref.rfind("file:", 0) == 0) {
        std::string p = ref.substr(5);
        if (p.empty()) {
            s.error = "syntax: file: needs a path";
            return false;
        }
        fs::path path = fs::path(base_dir_) / p;
        return read_file(path.lexically_normal().string(), s, "file");
    }
    if (ref.rfind("credential:", 0) == 0) {
        std::string name = ref.substr(11);
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
            s.error = "syntax: credential: needs a credential name (one file name, no '/')";
            return false;
        }
        const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
        if (dir != nullptr && *dir != '\0')
            return read_file((fs::path(dir) / name).string(), s,
                             "systemd credential " + name + ", file");
        if (credentials_fallback_.empty()) {
            s.error = "not resolved: credential " + name +
                      ": $CREDENTIALS_DIRECTORY is not set (not started by systemd with "
                      "LoadCredential=)";
            return false;
        }
        return read_file((fs::path(credentials_fallback_) / name).lexically_normal().string(), s,
                         "credential " + name + " outside systemd, file");
    }
    s.error = "syntax: a secret is written as ${ENV_VAR}, file:PATH or credential:NAME";
    return false;
}

bool SecretResolver::read_file(const std::string& file, Secret& s, const std::string& origin) {
    const fs::path path(file);
    std::string v;
    struct stat st {};
    if (!read_secret_file(path, v, st, s.error)) return false;
    if (!v.empty() && v.back() == '\n') v.pop_back();
    if (!v.empty() && v.back() == '\r') v.pop_back();
    if (v.empty()) {
        s.error = "not resolved: " + path.string() + " is empty";
        return false;
    }
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        warnings_.push_back("secret file " + path.string() +
                            " is readable by group or others (mode " + mode + "); chmod 600 it");
    }
    s.value = std::move(v);
    s.origin = origin + " " + path.string();
    return true;
}

}  // namespace clayhook
