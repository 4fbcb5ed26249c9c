#include "dispatch/LaneQueue.h"

#include <algorithm>

namespace clayhook {

namespace {

// Later-due first out of a std::*_heap (a min-heap on due_ms, then id).
bool due_after(const DeliveryRef& a, const DeliveryRef& b) {
    return a.due_ms != b.due_ms ? a.due_ms > b.due_ms : a.id > b.id;
}

}  // namespace

void LaneQueue::place(DeliveryRef&& ref, int64_t now) {
    if (ref.due_ms <= now) {
        ready_.push_back(std::move(ref));
    } else {
        later_.push_back(std::move(ref));
        std::push_heap(later_.begin(), later_.end(), due_after);
    }
}

bool LaneQueue::hold_back(DeliveryRef& ref) {
    if (!ordered_ || ref.order_key.empty()) return false;
    auto [it, fresh] = keys_.try_emplace(ref.order_key);
    if (fresh) return false;  // the key is free: this one takes it
    it->second.push_back(std::move(ref));
    ++held_;
    return true;
}

bool LaneQueue::admit(DeliveryRef&& ref, int64_t now) {
    if (!known_.insert(ref.id).second) return false;  // already here
    if (!hold_back(ref)) place(std::move(ref), now);
    return true;
}

void LaneQueue::set_ordered(bool ordered, int64_t now) {
    if (ordered == ordered_) return;
    ordered_ = ordered;
    std::vector<DeliveryRef> all;
    for (auto& [key, waiting] : keys_)
        for (auto& r : waiting)
            all.push_back(std::move(r));
    keys_.clear();
    held_ = 0;
    for (auto& r : ready_)
        all.push_back(std::move(r));
    ready_.clear();
    for (auto& r : later_)
        all.push_back(std::move(r));
    later_.clear();
    // Event order, so the first of each key goes first.
    std::sort(all.begin(), all.end(),
              [](const DeliveryRef& a, const DeliveryRef& b) { return a.id < b.id; });
    if (ordered_)
        for (const auto& [id, key] : running_)
            if (!key.empty()) keys_.try_emplace(key);  // a running one holds its key
    for (auto& r : all)
        if (!hold_back(r)) place(std::move(r), now);
}

void LaneQueue::promote(int64_t now) {
    while (!later_.empty() && later_.front().due_ms <= now) {
        std::pop_heap(later_.begin(), later_.end(), due_after);
        ready_.push_back(std::move(later_.back()));
        later_.pop_back();
    }
}

size_t LaneQueue::take(int64_t now, size_t max, std::vector<DeliveryRef>& out) {
    promote(now);
    const size_t n = std::min(max, ready_.size());
    for (size_t i = 0; i < n; ++i) {
        running_.emplace(ready_.front().id, ready_.front().order_key);
        out.push_back(std::move(ready_.front()));
        ready_.pop_front();
    }
    return n;
}

void LaneQueue::put_back(DeliveryRef&& ref, int64_t now) {
    place(std::move(ref), now);
}

void LaneQueue::release(const DeliveryRef& ref, int64_t now) {
    known_.erase(ref.id);
    if (!ordered_ || ref.order_key.empty()) return;
    auto it = keys_.find(ref.order_key);
    if (it == keys_.end()) return;
    if (it->second.empty()) {
        keys_.erase(it);
        return;
    }
    DeliveryRef next = std::move(it->second.front());
    it->second.pop_front();
    --held_;
    place(std::move(next), now);
}

void LaneQueue::end_call(const std::vector<DeliveryRef>& items) {
    for (const auto& r : items)
        running_.erase(r.id);
}

bool LaneQueue::reschedule(int64_t id, int64_t at_ms, int64_t now) {
    auto move = [&](DeliveryRef& r) {
        r.due_ms = at_ms;
        r.age_from_ms = at_ms;
        r.attempts = 0;
    };
    for (auto& r : later_) {
        if (r.id != id) continue;
        move(r);
        std::make_heap(later_.begin(), later_.end(), due_after);
        return true;
    }
    for (auto it = ready_.begin(); it != ready_.end(); ++it) {
        if (it->id != id) continue;
        DeliveryRef r = std::move(*it);
        ready_.erase(it);
        move(r);
        place(std::move(r), now);
        return true;
    }
    return false;
}

std::vector<int64_t> LaneQueue::running_ids() const {
    std::vector<int64_t> out;
    out.reserve(running_.size());
    for (const auto& [id, key] : running_)
        out.push_back(id);
    return out;
}

std::optional<int64_t> LaneQueue::next_due_ms() const {
    if (later_.empty()) return std::nullopt;
    return later_.front().due_ms;
}

std::optional<int64_t> LaneQueue::first_due_ms() const {
    if (ready_.empty()) return std::nullopt;
    return ready_.front().due_ms;
}

LaneQueue::Counts LaneQueue::counts(int64_t now) const {
    Counts c;
    c.due = ready_.size();
    for (const auto& r : later_)
        if (r.due_ms <= now) ++c.due;
    c.later = later_.size() - (c.due - ready_.size());
    c.held = held_;
    c.running = running_.size();
    c.first_due_ms = first_due_ms();
    return c;
}

}  // namespace clayhook
