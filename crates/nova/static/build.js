// Follows a build on its page: appends new log output and updates the state as the server
// sends them over Server-Sent Events. Without this script the page shows the stored log.
(function () {
  "use strict";
  var log = document.getElementById("build-log");
  if (!log || log.dataset.final === "true" || !window.EventSource) return;
  var state = document.getElementById("build-state");
  var digest = document.getElementById("build-digest");
  var source = new EventSource(log.dataset.events);
  var offset = Number(log.dataset.offset);
  source.addEventListener("log", function (e) {
    var end = Number(e.lastEventId);
    if (end <= offset) return; // Output the page already shows.
    offset = end;
    log.appendChild(document.createTextNode(e.data + "\n"));
    log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("status", function (e) {
    var build = JSON.parse(e.data);
    state.textContent = build.state + (build.reason ? ": " + build.reason : "");
    if (build.digest) {
      var text = build.image + "@" + build.digest;
      digest.textContent = "";
      if (build.state === "succeeded" && digest.dataset.images) {
        var link = document.createElement("a");
        link.href = digest.dataset.images + "#image-" + build.digest;
        link.textContent = text;
        digest.appendChild(link);
      } else {
        digest.textContent = text;
      }
    }
    if (build.finishedAt) source.close();
  });
})();
