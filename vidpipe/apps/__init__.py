"""The applications on top of vidpipe's layers: the CLI, the Airflow task functions and the demo.

Nothing below this package imports it. Modules here import their heavy dependencies lazily: the DAG files
import vidpipe.apps.orchestration at parse time.
"""
