"""The page `stance serve` shows at GET /: paste an article or drop a file, press one button, see the report.

The result is ``render.render_fragment``'s output (from ``POST /v1/report``), shown with the
report's own ``STYLE`` and ``SCRIPT``, so the page and `stance predict --format html` look alike.
Native form controls with labels keep it usable with the keyboard alone (Tab order follows
the page; the focus ring is always visible); the layout is one column that fits a phone.
"""

from __future__ import annotations

import html
from typing import Any

from stance.render import SCRIPT, STYLE

_PAGE_STYLE = """
form{display:grid;gap:.6rem;margin:.8rem 0}
label{font-weight:600}textarea{width:100%;box-sizing:border-box;min-height:12rem;font:inherit;padding:.5rem;
 border:2px solid #555;border-radius:6px}
.drop{border:2px dashed #555;border-radius:6px;padding:.6rem;display:grid;gap:.3rem}.drop.over{background:#fff3c4}
.row{display:flex;flex-wrap:wrap;gap:.6rem 1.2rem;align-items:center}.row label{font-weight:400}
button{font:inherit;font-weight:600;padding:.55rem 1.4rem;border:2px solid #000;border-radius:6px;background:#0072B2;
 color:#fff;cursor:pointer;justify-self:start}button[disabled]{opacity:.6}
#status{min-height:1.5em;margin:0}#result:focus{outline:none;box-shadow:none}#status.error{color:#a00;font-weight:600}
@media (max-width:40rem){main{padding:.6rem}h1{font-size:1.25rem}button{width:100%}}
"""

_PAGE_SCRIPT = """
(function(){
var form=document.getElementById('form'),text=document.getElementById('text'),file=document.getElementById('file'),
 isHtml=document.getElementById('is-html'),status=document.getElementById('status'),out=document.getElementById('result'),
 drop=document.getElementById('drop'),button=document.getElementById('go'),name='pasted';
function load(f){if(!f){return}var r=new FileReader();r.onload=function(){text.value=r.result;name=f.name;
 isHtml.checked=/\\.html?$/i.test(f.name);status.className='';
 status.textContent='Loaded '+f.name+'. Press Find stances.';text.focus()};r.readAsText(f)}
file.addEventListener('change',function(){load(file.files[0])});
['dragenter','dragover'].forEach(function(t){drop.addEventListener(t,function(e){e.preventDefault();drop.classList.add('over')})});
['dragleave','drop'].forEach(function(t){drop.addEventListener(t,function(e){e.preventDefault();drop.classList.remove('over')})});
drop.addEventListener('drop',function(e){load(e.dataTransfer.files[0])});
text.addEventListener('input',function(){name='pasted'});
form.addEventListener('submit',function(e){e.preventDefault();
 if(!text.value.trim()){status.className='error';status.textContent='Paste an article first.';text.focus();return}
 button.disabled=true;status.className='';status.textContent='Working...';
 fetch('v1/report',{method:'POST',headers:{'Content-Type':'application/json'},
  body:JSON.stringify({articles:[{id:name,text:text.value,format:isHtml.checked?'html':'text'}]})})
 .then(function(r){return r.ok?r.text():r.json().then(function(j){throw new Error(j.detail||r.statusText)},
  function(){throw new Error(r.status+' '+r.statusText)})})
 .then(function(h){out.innerHTML=h;status.textContent='Done.';out.focus()})
 .catch(function(err){status.className='error';status.textContent='Error: '+err.message})
 .finally(function(){button.disabled=false})});
})();
"""


def render_page(info: dict[str, Any]) -> str:
    """The whole page for a model described by ``serve.model_info``."""
    e = html.escape
    labels = ", ".join(info["labels"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>stance: {e(info["name"])}</title><style>{STYLE}{_PAGE_STYLE}</style></head>
<body><main>
<h1>Who accuses, who denies, who supports</h1>
<p>Model <code>{e(info["name"])}</code> ({e(info["backend"])}), labels {e(labels)}. API: <a href="docs">/docs</a>.</p>
<form id="form">
<label for="text">Article text</label>
<textarea id="text" name="text" spellcheck="false"
 placeholder="Paste a news article here, or choose a .txt or .html file below."></textarea>
<div class="drop" id="drop"><label for="file">Or choose a .txt or .html file (you can also drop one here)</label>
<input type="file" id="file" accept=".txt,.text,.md,.html,.htm,text/plain,text/html"></div>
<div class="row"><label><input type="checkbox" id="is-html"> The text is an HTML page (extract its main text)</label>
</div>
<button type="submit" id="go">Find stances</button>
<p id="status" role="status" aria-live="polite"></p>
</form>
<section id="result" tabindex="-1" aria-label="Result"></section>
</main>
<script>{SCRIPT}{_PAGE_SCRIPT}</script>
</body></html>
"""
