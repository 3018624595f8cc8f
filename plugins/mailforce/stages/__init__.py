"""One module per DAG stage, each a plain function: client + settings + typed inputs -> typed summary.

The DAG's task bodies (`mailforce.dag_tasks`) and the tests' driver call the same functions.
"""
