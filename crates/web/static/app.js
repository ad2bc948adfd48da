// The little JavaScript the pages use; every page works without it.
// - A form's submit buttons are disabled once it is sent, so a double tap sends it once (the
//   form's hidden event id makes a second send harmless anyway).
// - `data-confirm` on a form asks before sending.
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
