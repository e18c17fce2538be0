// Progressive help on the return form; the server checks everything again.
// - the note is marked required for the reasons that need one;
// - resolutions not allowed for every chosen item are disabled.
(function () {
  var form = document.getElementById("return-form");
  if (!form) return;
  var reason = document.getElementById("reason");
  var note = document.getElementById("note");
  var hint = document.getElementById("note-hint");
  function syncNote() {
    if (!reason) return;
    var opt = reason.options[reason.selectedIndex];
    var required = opt && opt.getAttribute("data-note") === "required";
    hint.hidden = !required;
    note.required = required;
    note.setAttribute("aria-required", required ? "true" : "false");
  }
  function syncResolutions() {
    var allowed = null;
    form.querySelectorAll(".line").forEach(function (line) {
      var sel = line.querySelector("select");
      if (!sel || sel.value === "0") return;
      var mine = line.getAttribute("data-resolutions").split(" ");
      allowed = allowed === null ? mine : allowed.filter(function (r) { return mine.indexOf(r) >= 0; });
    });
    var radios = form.querySelectorAll('input[name="resolution"]');
    var checkedOk = false;
    radios.forEach(function (r) {
      var ok = allowed === null || allowed.indexOf(r.value) >= 0;
      r.disabled = !ok;
      r.parentNode.classList.toggle("disabled", !ok);
      if (r.checked && !ok) r.checked = false;
      if (r.checked) checkedOk = true;
    });
    if (!checkedOk) {
      for (var i = 0; i < radios.length; i++) {
        if (!radios[i].disabled) { radios[i].checked = true; break; }
      }
    }
  }
  if (reason) reason.addEventListener("change", syncNote);
  form.addEventListener("change", syncResolutions);
  syncNote();
  syncResolutions();
})();
