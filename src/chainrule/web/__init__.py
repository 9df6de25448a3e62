"""`chainrule serve`: draw a digit in the browser, watch the network read it, teach it one step.

- `lab`     the numbers: predict (with every layer's activations) and one gradient step on a
            drawn digit, through the library's own forward, `SoftmaxCrossEntropy`, `backward`
            and `SGD` (plain NumPy, no web dependency).
- `session` per-visitor copies of the model (a bounded LRU keyed by a cookie).
- `app`     the Starlette application: the JSON API and the page (`static/`).
- `server`  `main(argv)`: pick or train a model, then run uvicorn.

Starlette and uvicorn are the optional extra `web`: `pip install "chainrule[web]"`.
"""
