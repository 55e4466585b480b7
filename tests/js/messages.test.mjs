import assert from "node:assert/strict";
import { test } from "node:test";

import { searchedLine, searchFilters } from "../../web/static/js/ui/messages.js";

const search = {
  query: "contract",
  filters: { from: ["Northwind"], window: "last 90 days", category: "interview", label: null, attachment: "pdf", unread: null, owner: "you", received_within_days: 90 },
  window_days: 90,
  total_hits: 3,
  relaxed: ["window", "fuzzy"],
  intent: "count",
  count: 3,
  follow_up: true,
};

test("the searched line names the category, words, sender, attachment and window", () => {
  assert.equal(
    searchedLine(search),
    "Searched for interview emails about “contract” from Northwind with a pdf attachment in the last 90 days · 3 emails matched",
  );
});

test("every filter of the answer becomes a chip, with the intent, count and relaxation", () => {
  assert.deepEqual(searchFilters(search), [
    ["intent", "count"],
    ["words", "contract"],
    ["from", "Northwind"],
    ["window", "last 90 days"],
    ["category", "interview"],
    ["attachment", "pdf"],
    ["count", "3"],
    ["relaxed", "window → fuzzy"],
    ["refines", "the previous question"],
  ]);
});

test("an absolute window is said as it is, and an old search block still reads", () => {
  const since = { ...search, filters: { window: "since 2026-03-01" }, query: "", window_days: 275, total_hits: 1 };
  assert.equal(searchedLine(since), "Searched for all your mail since 2026-03-01 · 1 email matched");
  assert.equal(searchedLine({ query: "offer", window_days: 30, total_hits: 0 }), "Searched for “offer” in the last 30 days · 0 emails matched");
  assert.deepEqual(searchFilters(null), []);
  assert.equal(searchedLine(null), "");
});
