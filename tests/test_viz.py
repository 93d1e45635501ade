from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lmbook_utils import attention_views, html_views, viz  # noqa: E402

TOKENS = ["the", "cat", "sat", "down"]


def softmax_attention(layers: int, heads: int, q: int, k: int, seed: int = 0):
    """Per-layer (1, heads, q, k) tensors: what torch models return with output_attentions."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, heads, q, k, generator=g).softmax(-1) for _ in range(layers))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def params_of(view_html: str) -> dict:
    """The parameters bertviz's script draws from (its `const params = {...};`)."""
    match = re.search(r"const params = (\{.*?\}); //", view_html)
    assert match, "no params in the view"
    return json.loads(match.group(1))


def have_node_modules() -> bool:
    return all((attention_views._node_modules() / rel).is_file() for rel in attention_views._LIBS.values())


def run_node(script: str) -> str:
    """Run JavaScript in node (installed with the book's assets); skip where there is none."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is missing (it comes with npm, which `make assets` needs)")
    return subprocess.run([node, "-e", script], capture_output=True, text=True, check=True,
                          timeout=60).stdout


# ------------------------------------------------------------------ shapes accepted

def test_accepts_what_a_transformers_model_returns():
    """A real (tiny, randomly initialised) BERT's output_attentions goes straight in."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32,
                                     attn_implementation="eager")
    model = transformers.BertModel(config).eval()
    with torch.no_grad():
        out = model(torch.tensor([[1, 5, 7, 2]]), output_attentions=True)
    assert isinstance(out.attentions, tuple) and out.attentions[0].shape == (1, 2, 4, 4)
    view = viz.head_view(out.attentions, TOKENS)
    attn = params_of(view.html)["attention"][0]["attn"]
    expected = torch.stack(out.attentions)[:, 0].double().round(decimals=3)
    assert torch.tensor(attn, dtype=torch.float64).reshape(expected.shape).allclose(expected)


def test_tuple_of_layers_and_one_stacked_tensor_give_the_same_view():
    layers = softmax_attention(2, 3, 4, 4)
    a = viz.model_view(layers, TOKENS).html
    b = viz.model_view(torch.stack(layers)[:, 0], TOKENS).html  # (layers, heads, q, k)
    c = viz.model_view([x[0].numpy() for x in layers], TOKENS).html  # list of (heads, q, k) arrays
    assert a == b == c


def test_weights_are_rounded_to_three_decimals():
    attn = torch.tensor([[[[0.12345, 0.87655], [1.0, 0.0]]]])  # (1, 1 head, 2, 2), one layer
    params = params_of(viz.head_view([attn], ["a", "b"]).html)
    assert params["attention"][0]["attn"] == [[[[0.123, 0.877], [1.0, 0.0]]]]
    assert params["attention"][0]["left_text"] == ["a", "b"]


def test_encoder_decoder_view_carries_all_three_attentions():
    src, tgt = ["a", "b", "c"], ["x", "y"]
    view = viz.encoder_decoder_view(softmax_attention(2, 2, 3, 3), softmax_attention(2, 2, 2, 2, 1),
                                    softmax_attention(2, 2, 2, 3, 2), src, tgt)
    names = {a["name"]: a for a in params_of(view.html)["attention"]}
    assert set(names) == {"Encoder", "Decoder", "Cross"}
    assert names["Cross"]["left_text"] == tgt and names["Cross"]["right_text"] == src
    assert view.kind == "head"
    assert viz.encoder_decoder_view(softmax_attention(1, 1, 3, 3), softmax_attention(1, 1, 2, 2),
                                    softmax_attention(1, 1, 2, 3), src, tgt,
                                    view="model").kind == "model"


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("attention, tokens, message", [
    (softmax_attention(2, 2, 3, 3), TOKENS, r"attention layer 0 has shape .*\(2, 3, 3\), expected \(2, 4, 4\)"),
    ([torch.rand(2, 2, 4, 4).softmax(-1)], TOKENS, r"attention\[0\] must have batch size 1"),
    (torch.rand(2, 3, 2, 4, 4).softmax(-1), TOKENS, r"attention must have batch size 1"),
    (torch.rand(4, 4), TOKENS, r"attention must have shape \(layers, 1, heads, 4, 4\)"),
    ([torch.rand(2, 4, 4), torch.rand(3, 4, 4)], TOKENS, r"attention layer 1 has shape"),
    ([], TOKENS, r"attention must hold at least one layer"),
    ([torch.rand(1, 4, 4).fill_(float("nan"))], TOKENS, r"attention contains NaN"),
    ([torch.rand(1, 4, 4) + 1.5], TOKENS, r"attention weights must lie in \[0, 1\]"),
    (softmax_attention(1, 1, 4, 4), [], r"tokens must not be empty"),
])
def test_bad_attention_or_tokens_raise_value_error(attention, tokens, message):
    with pytest.raises(ValueError, match=message):
        viz.head_view(attention, tokens)


@pytest.mark.parametrize("attention, tokens, message", [
    ("not attention", TOKENS, r"attention must be a tensor/array or a list"),
    ([[0.5, 0.5]], TOKENS, r"attention\[0\] must be a tensor or array, got list"),
    (softmax_attention(1, 1, 4, 4), "the cat sat down", r"tokens must be a list of strings"),
    (softmax_attention(1, 1, 4, 4), [1, 2, 3, 4], r"tokens must be a list of strings, found int"),
])
def test_wrong_types_raise_type_error(attention, tokens, message):
    with pytest.raises(TypeError, match=message):
        viz.model_view(attention, tokens)


def test_options_are_checked():
    attn = softmax_attention(2, 2, 4, 4)
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, 2\)"):
        viz.head_view(attn, TOKENS, layer=2)
    with pytest.raises(ValueError, match=r"heads must be a non-empty list of integers in \[0, 2\)"):
        viz.head_view(attn, TOKENS, heads=[0, 5])
    with pytest.raises(ValueError, match=r"sentence_b_start must be an integer in \(0, 4\)"):
        viz.model_view(attn, TOKENS, sentence_b_start=4)
    with pytest.raises(ValueError, match=r"display_mode must be 'light' or 'dark'"):
        viz.model_view(attn, TOKENS, display_mode="blue")


def test_encoder_decoder_shapes_are_checked():
    src, tgt = ["a", "b", "c"], ["x", "y"]
    enc, dec = softmax_attention(2, 2, 3, 3), softmax_attention(2, 2, 2, 2)
    with pytest.raises(ValueError, match=r"cross_attention layer 0 has shape .*expected \(2, 2, 3\)"):
        viz.encoder_decoder_view(enc, dec, softmax_attention(2, 2, 3, 2), src, tgt)
    with pytest.raises(ValueError, match=r"same number of layers, got 2, 2, 1"):
        viz.encoder_decoder_view(enc, dec, softmax_attention(1, 2, 2, 3), src, tgt)
    with pytest.raises(ValueError, match=r"decoder_attention layer 0 has shape"):
        viz.encoder_decoder_view(enc, dec, softmax_attention(2, 2, 2, 3), src, ["x", "y", "z"])
    with pytest.raises(ValueError, match=r"view must be 'head' or 'model'"):
        viz.encoder_decoder_view(enc, dec, softmax_attention(2, 2, 2, 3), src, tgt, view="neuron")


# ------------------------------------------------------------------ stable, offline HTML

def test_the_same_view_twice_gives_identical_html():
    """No hidden state: a view's HTML depends only on its arguments."""
    attn = softmax_attention(2, 2, 4, 4)
    first = viz.head_view(attn, TOKENS).html
    assert viz.head_view(attn, TOKENS).html == first
    assert viz.model_view(attn, TOKENS).html == viz.model_view(attn, TOKENS).html
    assert not re.search(r"bertviz-[0-9a-f]{32}", first)  # bertviz's random uuid is gone


def test_a_view_does_not_depend_on_what_ran_before():
    """Which cell ran first (or which ran twice) does not change a stored output."""
    attn, other = softmax_attention(1, 2, 4, 4), softmax_attention(2, 1, 4, 4, seed=1)
    alone = viz.head_view(attn, TOKENS).html
    viz.model_view(other, TOKENS)
    viz.encoder_decoder_view(other, other, other, TOKENS, TOKENS)
    viz.frame_switcher({1: "<p>a</p>"}, label="k")
    assert viz.head_view(attn, TOKENS).html == alone


def test_two_fresh_python_processes_give_identical_html(tmp_path):
    """What nbval sees: two separate kernel runs store byte-identical output."""
    script = (
        "import torch, sys\n"
        "from lmbook_utils import viz\n"
        "g = torch.Generator().manual_seed(3)\n"
        "a = tuple(torch.rand(1, 2, 3, 3, generator=g).softmax(-1) for _ in range(2))\n"
        "sys.stdout.write(viz.head_view(a, ['x', 'y', 'z']).html + viz.model_view(a, ['x', 'y', 'z']).html)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, timeout=120).stdout for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) > 1000


def test_ids_come_from_the_content_and_each_view_claims_its_element():
    attn = softmax_attention(1, 1, 4, 4)
    a, b = viz.head_view(attn, TOKENS).html, viz.head_view(attn, ["w", "x", "y", "z"]).html
    id_a, id_b = params_of(a)["root_div_id"], params_of(b)["root_div_id"]
    assert re.fullmatch(r"lmbook-head-[0-9a-f]{12}", id_a) and id_a != id_b
    assert f'id="{id_a}"' in a and f'id="{id_b}"' in b
    assert params_of(viz.model_view(attn, TOKENS).html)["root_div_id"].startswith("lmbook-model-")
    # At run time the view draws into the first copy of its element not drawn yet.
    assert re.search(r"const params = \{.*\}; //[^\n]*\n *params\.root_div_id = "
                     r"window\.__lmbookViz\.claim\(params\.root_div_id\);", a)


def test_two_copies_of_one_view_on_a_page_each_get_their_own_element():
    """The loader's `claim`, run in node over a stand-in page holding the same view twice."""
    script = """
      const els = [0, 1].map(i => ({id: "v", n: i, attrs: {},
        hasAttribute(k) { return k in this.attrs; }, setAttribute(k, v) { this.attrs[k] = v; }}));
      global.window = {};
      global.document = {querySelectorAll(sel) {
        const id = /^\\[id="(.*)"\\]$/.exec(sel)[1]; return els.filter(e => e.id === id); }};
      eval(LOADER); eval(LOADER);  // every view carries the loader: twice must be harmless
      const api = window.__lmbookViz, first = api.claim("v"), second = api.claim("v");
      eval(LOADER);
      console.log(JSON.stringify({same: api === window.__lmbookViz, first, second,
                                  ids: els.map(e => e.id), drawn: els.map(e => "data-lmbook-drawn" in e.attrs)}));
    """.replace("LOADER", json.dumps(attention_views._LOADER_JS))
    result = json.loads(run_node(script))
    assert result == {"same": True, "first": "v-copy1", "second": "v", "ids": ["v-copy1", "v"],
                      "drawn": [True, True]}


@pytest.mark.skipif(not have_node_modules(), reason="node_modules missing: run `make assets`")
def test_every_view_carries_the_guarded_libraries_and_nothing_comes_from_a_cdn():
    attn = softmax_attention(1, 1, 4, 4)
    first, second = viz.head_view(attn, TOKENS).html, viz.model_view(attn, TOKENS).html
    for html in (first, second):
        assert "cdnjs" not in html and "require.config" not in html and "requirejs(" not in html
        assert "http://" not in html.replace("http://www.w3.org", "")
        assert "https://" not in html.replace("https://github.com", "").replace("https://d3js.org", "")
    nm = attention_views._node_modules()
    jquery = (nm / "jquery/dist/jquery.min.js").read_text(encoding="utf-8")
    d3 = (nm / "d3/dist/d3.min.js").read_text(encoding="utf-8")
    assert "jQuery v2.1.0" in jquery and 'version="5.7.0"' in d3  # the pinned versions
    for html in (first, second):  # each view works alone: it carries the libraries ...
        assert html.count("jQuery v2.1.0") == 1 and html.count('version="5.7.0"') == 1
        loader = html.index("window.__lmbookViz = {")
        guard = html.index("if (window.__lmbookViz.ready) return;")  # ... evaluated once per page
        libs, draw = html.index("jQuery v2.1.0"), html.index("window.__lmbookViz.run(function ($, d3)")
        assert loader < guard < libs < draw
    assert len(first) > 300_000 and len(second) > 300_000


def test_without_node_modules_it_warns_and_uses_the_cdn(monkeypatch, tmp_path):
    monkeypatch.setenv("LMBOOK_NODE_MODULES", str(tmp_path))
    with pytest.warns(UserWarning, match=r"run `make assets` \(npm ci\)"):
        html = viz.head_view(softmax_attention(1, 1, 4, 4), TOKENS).html
    assert "https://cdnjs.cloudflare.com/ajax/libs/d3/5.7.0/d3.min.js" in html
    assert "window.__lmbookVizCdn" in html and "jQuery v2.1.0" not in html


def test_tokens_cannot_close_the_script_early():
    tokens = ["</script>", "<b>", "a", "b"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        html = viz.head_view(softmax_attention(1, 1, 4, 4), tokens).html
    body = html.split('<script type="text/javascript">', 1)[1]
    assert body.count("</script>") == 1  # only the real end of the script


# ------------------------------------------------------------------ frame_switcher

def figure(k: int):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, k])
    return fig


def test_frame_switcher_structure_slider():
    figs = {k: figure(k) for k in (1, 2, 3)}
    html = viz.frame_switcher(figs, label="k & more", initial=2).html
    frames = re.findall(r'<div class="lmbook-frame" data-value="([^"]*)"( hidden)?>', html)
    assert frames == [("1", " hidden"), ("2", ""), ("3", " hidden")]
    assert '<input type="range" min="0" max="2" step="1" value="1" aria-label="k &amp; more">' in html
    assert "<output>2</output>" in html
    assert html.count("data:image/svg+xml;base64,") == 3
    assert all(not plt.fignum_exists(f.number) for f in figs.values())  # closed: not shown twice
    root_id = re.search(r'<div class="lmbook-frames" id="([^"]+)"', html).group(1)
    assert re.fullmatch(r"lmbook-frames-[0-9a-f]{12}", root_id)
    assert f"""document.querySelectorAll('[id="' + {json.dumps(root_id)} + '"]')""" in html


def test_frame_switcher_dropdown_and_html_frames():
    html = viz.frame_switcher({"a": "<p>first</p>", "b": "<p>second</p>"}, label="choice",
                              control="dropdown").html
    assert '<select aria-label="choice"><option value="0" selected>a</option>' \
           '<option value="1">b</option></select>' in html
    assert '<div class="lmbook-frame" data-value="b" hidden><p>second</p></div>' in html


def test_frame_switcher_twice_gives_identical_html():
    make = lambda **kw: viz.frame_switcher({k: figure(k) for k in (1, 2)}, label="k", **kw).html  # noqa: E731
    first = make()
    assert make() == first  # no hidden state: a second switcher in the same kernel is the same bytes
    ids = {re.search(r'id="(lmbook-frames-[0-9a-f]+)"', h).group(1)
           for h in (first, make(initial=2), make(control="dropdown"))}
    assert len(ids) == 3  # different HTML, different id


def test_two_copies_of_one_switcher_on_a_page_are_both_wired():
    """The switcher's script, run in node over a stand-in page holding the same switcher twice."""
    html = viz.frame_switcher({"a": "<p>a</p>", "b": "<p>b</p>"}, label="k").html
    root_id = re.search(r'id="([^"]+)"', html).group(1)
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    node = """
      const wired = [];
      const roots = [0, 1].map(i => ({id: ROOT, attrs: {},
        hasAttribute(k) { return k in this.attrs; }, setAttribute(k, v) { this.attrs[k] = v; },
        querySelector(sel) { return sel === "output" ? {} : {value: "0",
          addEventListener(ev) { wired.push([i, ev]); }}; },
        querySelectorAll() { return []; }}));
      global.document = {querySelectorAll(sel) { return roots.filter(r => sel === '[id="' + r.id + '"]'); }};
      eval(SCRIPT); eval(SCRIPT); eval(SCRIPT);  // two copies, and a third run finds none left
      console.log(JSON.stringify(wired));
    """.replace("ROOT", json.dumps(root_id)).replace("SCRIPT", json.dumps(script))
    assert json.loads(run_node(node)) == [[0, "input"], [0, "change"], [1, "input"], [1, "change"]]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(frames={}, label="k"), ValueError, r"frames must be a non-empty mapping"),
    (dict(frames=[1, 2], label="k"), ValueError, r"frames must be a non-empty mapping"),
    (dict(frames={1: "<p>a</p>"}, label=""), ValueError, r"label must be a non-empty string"),
    (dict(frames={1: "<p>a</p>"}, label="k", control="knob"), ValueError,
     r"control must be 'slider' or 'dropdown', got 'knob'"),
    (dict(frames={1: "<p>a</p>"}, label="k", initial=5), ValueError,
     r"initial must be one of the frames' keys \['1'\], got 5"),
    (dict(frames={1: 3.5}, label="k"), TypeError, r"frames values must be .* got float for 'k = 1'"),
])
def test_frame_switcher_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        viz.frame_switcher(**kwargs)


def test_views_render_as_html_in_notebooks():
    view = viz.head_view(softmax_attention(1, 1, 4, 4), TOKENS)
    assert view._repr_html_() == view.html and repr(view) == "<bertviz head view>"
    fv = viz.frame_switcher({1: "<p>a</p>"}, label="k")
    assert fv._repr_html_() == fv.html and repr(fv) == "<frame switcher>"


def test_figure_html_is_stable_and_closes_the_figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def draw():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return fig

    first, second = viz.figure_html(draw(), alt="a line"), viz.figure_html(draw(), alt="a line")
    assert first == second and first.startswith('<img src="data:image/svg+xml;base64,')
    assert 'alt="a line"' in first
    assert plt.get_fignums() == []
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure"):
        viz.figure_html("<svg/>")


def test_heatmap_html_table_colours_and_errors():
    table = viz.heatmap_html([[0.0, 1.0], [0.5, 0.25]], ["他", "<b>"], ["he", "saw"], title="t")
    assert table == viz.heatmap_html(torch.tensor([[0.0, 1.0], [0.5, 0.25]]), ["他", "<b>"], ["he", "saw"], title="t")
    assert table.count("<td") == 4 and "&lt;b&gt;" in table and "他 → saw: 1.000" in table
    assert "#440154" in table and "#fde725" in table  # viridis at 0 and at 1
    with pytest.raises(ValueError, match="2 row_labels"):
        viz.heatmap_html([[0.1, 0.2]], ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="finite"):
        viz.heatmap_html([[float("nan")]], ["a"], ["x"])


def test_viz_is_the_entry_point_and_holds_no_state():
    """viz only re-exports; the views live in attention_views and html_views."""
    for name in viz.__all__:
        home = attention_views if name in attention_views.__all__ else html_views
        assert getattr(viz, name) is getattr(home, name), name
    assert sorted(viz.__all__) == sorted(attention_views.__all__ + html_views.__all__)
    for module in (viz, attention_views, html_views):
        assert not hasattr(module, "_SEEN") and not hasattr(module, "_STATE")


def _contrast(css: str) -> float:
    """WCAG 2 contrast ratio between a cell's background and its text colour, from the CSS."""
    rgb = [int(x) for x in re.search(r"rgb\((\d+), (\d+), (\d+)\)", css).groups()]
    text = (0, 0, 0) if "color: black" in css else (255, 255, 255)

    def luminance(colour):
        ch = [c / 255 for c in colour]
        ch = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]

    hi, lo = sorted((luminance(rgb), luminance(text)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_red_shade_reads_at_every_strength():
    from lmbook_utils.viz import red_shade

    assert red_shade(0.0) == "background: rgb(255, 255, 255); color: black"
    assert red_shade(1.0) == "background: rgb(165, 15, 21); color: white"
    worst = min(_contrast(red_shade(k / 200)) for k in range(201))
    assert worst >= 4.5, f"the least readable strength has contrast {worst:.2f}, below WCAG AA's 4.5"
    for bad in (-0.1, 1.5, "0.5", True, None):
        with pytest.raises(ValueError, match="value must be a number in \\[0, 1\\]"):
            red_shade(bad)
