#include "config/SecretResolver.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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
}  // namespace

bool SecretResolver::is_reference(const std::string& text) {
    return (text.rfind("${", 0) == 0 && text.back() == '}') || text.rfind("file:", 0) == 0;
}

Secret SecretResolver::resolve(const std::string& ref, const Position& pos) {
    Secret s;
    s.ref = ref;
    s.pos = pos;
    if (!is_reference(ref)) {
        s.error =
            "syntax: a secret is written as ${ENV_VAR} or file:PATH, never in clear in the config";
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
            s.error = "syntax: the fallback after ':-' must be ${VAR} or file:PATH";
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
        path = path.lexically_normal();
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            s.error = "not resolved: cannot read " + path.string() + ": " + std::strerror(errno);
            return false;
        }
        std::ostringstream buf;
        buf << in.rdbuf();
        std::string v = buf.str();
        if (v.size() > kMaxSecretBytes) {
            s.error = "not resolved: " + path.string() + " is larger than 64 KiB";
            return false;
        }
        if (!v.empty() && v.back() == '\n') v.pop_back();
        if (!v.empty() && v.back() == '\r') v.pop_back();
        if (v.empty()) {
            s.error = "not resolved: " + path.string() + " is empty";
            return false;
        }
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
            warnings_.push_back("secret file " + path.string() +
                                " is readable by group or others (mode " + mode +
                                "); chmod 600 it");
        }
        s.value = std::move(v);
        s.origin = "file " + path.string();
        return true;
    }
    s.error = "syntax: a secret is written as ${ENV_VAR} or file:PATH";
    return false;
}

}  // namespace clayhook
