"""Rule authoring for ops: check, test, diff, document and describe a rule base.

One module per command, with the shared machinery beside them:

    lint      ``qualify rules check``   errors and whole-rule-base warnings
    solver    can a condition ever hold? (used by lint for never-fires and shadowing)
    casefile  read a test file (``rules/default.test.yaml``) into checked cases
    testrun   ``qualify rules test``    run the cases; PASS/FAIL, coverage
    diff      ``qualify rules diff``    what changed, and its impact on a lead list
    doc       ``qualify rules doc``     the rule base as Markdown for the sales team
    schema    ``qualify rules schema``  the JSON Schema of the rule-base format
    render    conditions back to text, as code or in words
"""
