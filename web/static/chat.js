// collab-qa chat: posts the question form in the background and inserts the answer card the
// server renders (templates/_answer.html), so the page does not reload. The page works
// without this script: the same form posts to the same address and the page is redrawn.
// The conversation is kept on the server in both cases. The messages it shows come from the
// form's data-* attributes, in the page's language.
(function () {
  "use strict";
  var form = document.getElementById("ask-form");
  var conversation = document.getElementById("conversation");
  var status = document.getElementById("status");
  var input = document.getElementById("question");
  var button = document.getElementById("ask-button");
  if (!form || !conversation || !input || !window.fetch) { return; }
  var CHAT_HEADER = { "X-Collab-QA-Chat": "1" };
  var text = form.dataset;

  function feedbackNote(text) {
    var node = document.createElement("small");
    node.className = "thanks";
    node.textContent = text;
    return node;
  }

  // The card as the server rendered it: one <article class="turn">, its text escaped there.
  function renderedTurn(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content.querySelector(".turn");
  }

  form.addEventListener("submit", function (event) {
    if (!input.value.trim()) { return; }  // let the browser's own "required" message show
    event.preventDefault();
    button.disabled = true;
    status.textContent = text.searching;
    fetch(form.action, {
      method: "POST",
      headers: CHAT_HEADER,
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin"
    }).then(function (response) {
      if (response.ok) { return response.text(); }
      return response.json().catch(function () { return {}; }).then(function (data) {
        throw new Error(data.detail || text.failed);
      });
    }).then(function (html) {
      var turn = renderedTurn(html);
      if (!turn) { throw new Error(text.unshown); }
      var intro = document.getElementById("intro");
      if (intro) { intro.remove(); }
      var clear = document.getElementById("clear-form");
      if (clear) { clear.hidden = false; }
      conversation.appendChild(turn);
      status.textContent = "";
      input.value = "";
      input.removeAttribute("aria-invalid");
      turn.scrollIntoView({ block: "nearest" });
    }).catch(function (error) {
      status.textContent = error.message || text.unreachable;
      input.setAttribute("aria-invalid", "true");
    }).then(function () {
      button.disabled = false;
      input.focus();
    });
  });

  // 👍/👎 without leaving the page; an example question of the first screen is asked as if
  // typed.
  conversation.addEventListener("submit", function (event) {
    var target = event.target;
    if (target.classList && target.classList.contains("example")) {
      event.preventDefault();
      input.value = target.elements.question.value;
      form.requestSubmit();
      return;
    }
    if (!target.classList || !target.classList.contains("feedback")) { return; }
    event.preventDefault();
    var data = new URLSearchParams(new FormData(target, event.submitter));
    fetch(target.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: CHAT_HEADER
    }).then(function (response) {
      target.replaceChildren(feedbackNote(response.ok ? text.thanks : text.unsaved));
    });
  });
})();
