// collab-qa chat: posts questions to /api/ask and appends the answer without a reload.
// The page works without this script (plain form POST); this only makes it quicker.
// Everything from the server is inserted with textContent, never as HTML.
(function () {
  "use strict";
  var form = document.getElementById("ask-form");
  var conversation = document.getElementById("conversation");
  var status = document.getElementById("status");
  var input = document.getElementById("question");
  var button = document.getElementById("ask-button");
  if (!form || !conversation || !input || !window.fetch) { return; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) {
      if (child) { node.appendChild(typeof child === "string" ? document.createTextNode(child) : child); }
    });
    return node;
  }

  function citation(p) { return p.heading ? p.title + " › " + p.heading : p.title; }

  function telHref(phone) {
    return "tel:" + (phone.trim().charAt(0) === "+" ? "+" : "") + phone.replace(/\D/g, "");
  }

  function passage(text, sentence) {
    var quote = el("blockquote", { "class": "passage" });
    var at = sentence ? text.indexOf(sentence) : -1;
    if (at < 0) { quote.textContent = text; return quote; }
    quote.appendChild(document.createTextNode(text.slice(0, at)));
    quote.appendChild(el("mark", { text: sentence }));
    quote.appendChild(document.createTextNode(text.slice(at + sentence.length)));
    return quote;
  }

  function source(label, url) {
    return url ? el("a", { href: url, text: label }) : document.createTextNode(label);
  }

  function feedbackForm(turnId) {
    var f = el("form", { "class": "feedback", method: "post", action: "/feedback" }, [
      el("input", { type: "hidden", name: "turn_id", value: turnId || "" }),
      el("button", { type: "submit", name: "rating", value: "up", "aria-label": "Helpful", title: "Helpful" }, [
        el("img", { src: "/static/thumb-up.svg", alt: "", width: "18", height: "18" })]),
      el("button", { type: "submit", name: "rating", value: "down", "aria-label": "Not helpful", title: "Not helpful" }, [
        el("img", { src: "/static/thumb-down.svg", alt: "", width: "18", height: "18" })])
    ]);
    return f;
  }

  function card(a, turnId) {
    var body = el("div", { "class": a.abstained ? "card abstained" : "card" });
    if (a.abstained) {
      body.appendChild(el("p", { "class": "verdict", text: "The documents don't answer this." }));
      if (a.passages.length) {
        body.appendChild(el("p", { "class": "related-label", text: "Possibly related:" }));
        body.appendChild(el("ul", { "class": "related" }, a.passages.slice(0, 5).map(function (p) {
          return el("li", {}, [el("a", { href: p.url, text: citation(p) })]);
        })));
      }
    } else {
      if (a.contacts.length) {
        body.appendChild(el("section", { "class": "contacts", "aria-label": "Contacts" }, a.contacts.map(function (c) {
          return el("div", { "class": "contact" }, [
            c.name ? el("p", { "class": "contact-name" }, [c.name,
              c.role ? el("span", { "class": "contact-role", text: ", " + c.role }) : null]) : null,
            c.email ? el("p", {}, [el("a", { href: "mailto:" + c.email, text: c.email })]) : null,
            c.phone ? el("p", {}, [el("a", { href: telHref(c.phone), text: c.phone })]) : null,
            el("p", { "class": "cite" }, ["Source: ", source(c.citation, c.url)])
          ]);
        })));
      }
      if (a.passages.length) {
        var top = a.passages[0];
        body.appendChild(passage(top.text, a.best_sentence));
        body.appendChild(el("p", { "class": "cite" }, ["Source: ", el("a", { href: top.url, text: citation(top) })]));
      }
      a.conflicts.forEach(function (c) {
        body.appendChild(el("aside", { "class": "conflict", role: "note" }, [
          el("p", {}, [el("strong", { text: c.note || ("The sources disagree" + (c.topic ? " about " + c.topic : "") + ":") })]),
          el("ul", {}, c.statements.map(function (s) {
            return el("li", {}, ["“" + s.sentence + "” — ", source(s.citation, s.url)]);
          }))
        ]));
      });
      var more = a.passages.slice(1, 5);
      if (more.length) {
        body.appendChild(el("details", { "class": "more" }, [
          el("summary", { text: "More sources (" + more.length + ")" })
        ].concat(more.map(function (p) {
          return el("div", { "class": "source" }, [
            el("p", { "class": "cite" }, [el("a", { href: p.url, text: citation(p) })]),
            el("p", { "class": "snippet", text: p.text })
          ]);
        }))));
      }
    }
    body.appendChild(el("div", { "class": "meta" }, [
      el("small", { "class": "took", text: "Answered in " + Math.round(a.took_ms) + " ms" }),
      turnId ? feedbackForm(turnId) : null
    ]));
    return body;
  }

  function history() {
    return Array.prototype.map.call(conversation.querySelectorAll(".turn"), function (t) {
      return t.getAttribute("data-question");
    }).slice(-20);
  }

  form.addEventListener("submit", function (event) {
    var question = input.value.trim();
    if (!question) { return; }  // let the browser's own "required" message show
    event.preventDefault();
    var payload = { question: question, history: history() };
    var mode = document.getElementById("mode");
    var k = document.getElementById("k");
    if (mode && mode.value) { payload.mode = mode.value; }
    if (k && k.value) { payload.k = parseInt(k.value, 10); }
    button.disabled = true;
    status.textContent = "Searching the documents…";
    fetch("/api/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Collab-QA-Chat": "1" },
      body: JSON.stringify(payload),
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { throw new Error(data.detail || "The question could not be answered."); }
        return { data: data, turnId: response.headers.get("X-Collab-QA-Turn") || "" };
      });
    }).then(function (result) {
      var intro = document.getElementById("intro");
      if (intro) { intro.remove(); }
      var clear = document.getElementById("clear-form");
      if (clear) { clear.hidden = false; }
      var id = result.turnId || String(Date.now());
      var turn = el("article", { "class": "turn", id: "turn-" + id, "data-question": question }, [
        el("p", { "class": "question" }, [el("span", { "class": "visually-hidden", text: "You asked: " }), question]),
        card(result.data, result.turnId)
      ]);
      conversation.appendChild(turn);
      status.textContent = "";
      input.value = "";
      input.removeAttribute("aria-invalid");
      turn.scrollIntoView({ block: "nearest" });
    }).catch(function (error) {
      status.textContent = error.message || "The server could not be reached.";
      input.setAttribute("aria-invalid", "true");
    }).then(function () {
      button.disabled = false;
      input.focus();
    });
  });

  // 👍/👎 without leaving the page.
  conversation.addEventListener("submit", function (event) {
    var target = event.target;
    if (!target.classList || !target.classList.contains("feedback")) { return; }
    event.preventDefault();
    var data = new URLSearchParams(new FormData(target, event.submitter));
    fetch(target.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Collab-QA-Chat": "1" }
    }).then(function (response) {
      target.replaceChildren(el("small", { "class": "thanks", text: response.ok ? "Thanks for the feedback." : "Feedback could not be saved." }));
    });
  });
})();
