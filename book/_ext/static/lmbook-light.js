// The book is held to light mode (book/_ext/lmbook_reader.py says why). Runs in the page's head,
// before the theme's script reads the mode: a dark mode stored by another book opened from the
// same disk must not apply here.
(function () {
  try {
    localStorage.setItem("mode", "light");
    localStorage.setItem("theme", "light");
  } catch (e) {
    // Storage can be switched off; the attributes below still hold the mode for this page.
  }
  document.documentElement.dataset.mode = "light";
  document.documentElement.dataset.theme = "light";
})();
