// The little JavaScript the pages use; every page works without it.
// - A form's submit buttons are disabled once it is sent, so a double tap sends it once (the
//   form's hidden event id makes a second send harmless anyway).
// - `data-confirm` on a form asks before sending.
// - The segment builder offers only the tests that suit each row's field (below).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  window.setTimeout(function () {
    form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (button) {
      button.disabled = true;
    });
  }, 0);
});

// The segment builder's field picker: each row's test list keeps only the tests that suit the
// chosen field's kind, and the row's help says what the field takes. The server checks the
// same, so without this script a mismatch is simply shown next to the row.
function segmentRow(row) {
  var field = row.querySelector("select.segment-field");
  var operator = row.querySelector("select.segment-operator");
  var help = row.querySelector(".segment-help");
  if (!field || !operator) {
    return;
  }
  var chosen = field.options[field.selectedIndex];
  var kind = chosen ? chosen.getAttribute("data-kind") : null;
  if (help) {
    help.textContent = chosen && chosen.getAttribute("data-help") || "";
  }
  var selectedFits = false;
  operator.querySelectorAll("option").forEach(function (option) {
    var fits = !kind || option.getAttribute("data-kind") === kind;
    option.hidden = !fits;
    option.disabled = !fits;
    if (fits && option.selected) {
      selectedFits = true;
    }
  });
  operator.querySelectorAll("optgroup").forEach(function (group) {
    group.hidden = !!kind && !group.querySelector("option:not([disabled])");
  });
  if (!selectedFits) {
    var first = operator.querySelector("option:not([disabled])");
    if (first) {
      first.selected = true;
    }
  }
}
document.addEventListener("change", function (event) {
  if (event.target.matches && event.target.matches("select.segment-field")) {
    segmentRow(event.target.closest(".segment-row"));
  }
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".segment-row").forEach(segmentRow);
});
