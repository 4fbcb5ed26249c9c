#pragma once

// What the probe fixture plugin (tests/plugins/fixtures/probe.cpp) wrote: one
// JSON line per event handed over, with its id, attempt and the plugin's
// version. For the tests that drive a whole host with it.
#include <clayhook/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace clayhook::test {

// Every complete line of the probe's log, parsed (a line still being written
// when a host was killed is left out).
inline std::vector<json::Value> probe_lines(const std::string& path) {
    std::vector<json::Value> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty() && line.back() == '}') out.push_back(json::parse(line));
    return out;
}

// How often the probe was handed each event id, added to `counts` (so the
// logs of several hosts can be summed).
inline void count_probe_handlings(const std::string& path, std::map<std::string, int>& counts) {
    for (const auto& v : probe_lines(path))
        ++counts[v.get_string("id", "")];
}

// How often the probe was handed each event id, from one log.
inline std::map<std::string, int> probe_handlings(const std::string& path) {
    std::map<std::string, int> counts;
    count_probe_handlings(path, counts);
    return counts;
}

}  // namespace clayhook::test
