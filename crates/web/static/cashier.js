// The till's camera scan: where the browser has BarcodeDetector and a camera, a "scan" button
// reads the QR code on the member's card into the find box and sends the form. Typing the
// code always works; without this script nothing is lost.
"use strict";
(function () {
  var start = document.getElementById("scan-start");
  var form = document.getElementById("find-form");
  if (!start || !form || !("BarcodeDetector" in window) || !navigator.mediaDevices) {
    return;
  }
  var scanner = document.getElementById("scanner");
  var video = document.getElementById("scan-video");
  var input = document.getElementById("find-q");
  var stopButton = document.getElementById("scan-stop");
  var stream = null;
  var timer = null;
  var detector = new window.BarcodeDetector({ formats: ["qr_code"] });

  function stop() {
    if (timer) { window.clearInterval(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); stream = null; }
    scanner.hidden = true;
    start.hidden = false;
  }

  function look() {
    detector.detect(video).then(function (codes) {
      if (codes.length > 0 && codes[0].rawValue) {
        input.value = codes[0].rawValue;
        stop();
        form.submit();
      }
    }).catch(function () { /* a frame that cannot be read yet */ });
  }

  start.hidden = false;
  start.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (media) {
      stream = media;
      video.srcObject = media;
      scanner.hidden = false;
      start.hidden = true;
      return video.play();
    }).then(function () {
      timer = window.setInterval(look, 300);
    }).catch(stop);
  });
  stopButton.addEventListener("click", stop);
})();
