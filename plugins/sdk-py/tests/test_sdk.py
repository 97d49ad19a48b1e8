"""The Python kit's own tests, on the machine's CPython with the WIT bindings componentize-py
generates (`cargo xtask test` runs them: `componentize-py -d wit -w container-cpi bindings DIR`,
then `python3 -m unittest` with DIR and the kit on PYTHONPATH). What needs the host (a call's
grants, dry runs) is tested through omni-cpi itself, in tests/it."""

import unittest

from componentize_py_types import Err
from wit_world.imports import log as wit_log
from wit_world.imports import types

import omni_cpi_sdk as sdk
from omni_cpi_sdk.catalogue import CONTAINER_ACTIONS, DIRECTOR_ACTIONS

logged = []
# The host's log import, recorded (outside a component it would raise NotImplementedError).
wit_log.log = lambda level, message: logged.append((level, message))


class NetworkRequestTest(unittest.TestCase):
    def test_a_plugin_requests_no_host(self):
        self.assertEqual(sdk.PluginBase().network_requests(), [])


class DescribeTest(unittest.TestCase):
    def test_every_action_of_the_kind_is_listed_and_the_rest_unsupported(self):
        info = (sdk.Describe.container("c", "1")
                .implements("create-container", "list_containers")
                .otherwise_unsupported("no")
                .param("create_container", "image", "an image")
                .exec("runc", "state", sdk.VALUE)
                .conformance_param("image", "busybox")
                .build())
        self.assertEqual(len(info.actions), len(CONTAINER_ACTIONS))
        create = next(a for a in info.actions if a.name == "create_container")
        self.assertIsNone(create.unsupported)
        self.assertEqual(next(p for p in create.params if p.name == "image").description, "an image")
        start = next(a for a in info.actions if a.name == "start_container")
        self.assertEqual(start.unsupported, "no")
        self.assertEqual(info.default_settings, [("conformance.image", "busybox")])
        self.assertEqual(info.capabilities.exec, [types.ExecRequest(program="runc", args=["state", "<value>"])])
        self.assertEqual(info.kind, types.CpiKind.CONTAINER)

    def test_a_director_lists_the_director_actions(self):
        info = sdk.Describe.director("d", "1").implements_all().build()
        self.assertEqual([a.name for a in info.actions], [name for name, _ in DIRECTOR_ACTIONS])
        self.assertTrue(all(a.unsupported is None for a in info.actions))

    def test_mistakes_are_all_named(self):
        with self.assertRaises(sdk.DescribeMistake) as raised:
            (sdk.Describe.container("c", "1")
             .implements("create_contaner")
             .param("stop_container", "timeout_secs", "x")
             .exec("podman", sdk.REST, "rm")
             .dir("relative", False, "x")
             .setting("k", "a").setting("k", "b")
             .setting("n", 3)
             .build())
        text = str(raised.exception)
        for needle in ["`create_contaner` is not an action of a container CPI", "no parameter `timeout_secs`",
                       "`**` must be the last", "`relative` must be an absolute path", "`k` is declared twice",
                       "default of `n` must be text"]:
            self.assertIn(needle, text)


class ActionsTest(unittest.TestCase):
    def test_unimplemented_actions_answer_unsupported(self):
        class Container(sdk.ContainerBase):
            pass

        with self.assertRaises(Err) as raised:
            Container().start_container("x")
        self.assertEqual(raised.exception.value.kind, types.ErrorKind.UNSUPPORTED)
        self.assertIn("start_container", raised.exception.value.message)

    def test_typed_errors_pass_through_and_other_exceptions_become_internal(self):
        class Container(sdk.ContainerBase):
            def inspect_container(self, name):
                raise sdk.not_found(f"no container {name}")

            def logs(self, name):
                return {}[name]

        with self.assertRaises(Err) as raised:
            Container().inspect_container("web")
        self.assertEqual(raised.exception.value, types.CpiError(kind=types.ErrorKind.NOT_FOUND, message="no container web"))
        logged.clear()
        with self.assertRaises(Err) as raised:
            Container().logs("web")
        self.assertEqual(raised.exception.value.kind, types.ErrorKind.INTERNAL)
        self.assertEqual(raised.exception.value.message, "logs raised KeyError: 'web'")
        self.assertEqual(len(logged), 1, "the traceback goes to the operator's log")
        self.assertIn("Traceback", logged[0][1])

    def test_a_failed_program_is_named_with_its_last_stderr_line(self):
        from wit_world.imports import process
        ran = sdk.Ran("podman", process.Output(exit_code=125, signal=None, stdout=b"", stderr=b"warn\nError: boom\n",
                                               stdout_truncated=False, stderr_truncated=False, timed_out=False))
        with self.assertRaises(Err) as raised:
            ran.check("podman rm")
        self.assertEqual(raised.exception.value.message, "podman rm exited with status 125: Error: boom")
        slow = sdk.Ran("sleep", process.Output(exit_code=None, signal=9, stdout=b"", stderr=b"",
                                               stdout_truncated=False, stderr_truncated=False, timed_out=True))
        with self.assertRaises(Err) as raised:
            slow.check()
        self.assertEqual(raised.exception.value.kind, types.ErrorKind.TIMEOUT)
        ok = sdk.Ran("true", process.Output(0, None, b"ok", b"", False, False, False))
        self.assertIs(ok.check(), ok)
        self.assertEqual(ok.stdout, "ok")


if __name__ == "__main__":
    unittest.main()


class TemplatesTest(unittest.TestCase):
    """The app.py files `omni-cpi new --lang python` writes, run against the kit: describe()
    builds, and the one implemented action answers (tests/it builds and runs the container one
    as a component)."""

    def load(self, kind):
        import os
        import types as pytypes
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "../../../host/src/cli/templates/python", f"{kind}.py.tmpl")
        with open(path) as template:
            source = template.read().replace("{name}", "tmpl_cpi")
        module = pytypes.ModuleType(f"app_{kind}")
        exec(compile(source, path, "exec"), module.__dict__)
        return module

    def test_the_container_template_describes_itself(self):
        app = self.load("container")
        info = app.Plugin().describe()
        self.assertEqual(info.name, "tmpl_cpi")
        self.assertEqual([a.name for a in info.actions if a.unsupported is None], ["list_containers"])
        self.assertEqual(info.capabilities.dirs[0].guest_path, "/var/lib/tmpl_cpi")

    def test_the_director_template_describes_itself_and_answers(self):
        app = self.load("director")
        info = app.Plugin().describe()
        self.assertEqual(info.kind, types.CpiKind.DIRECTOR)
        self.assertEqual(sorted(a.name for a in info.actions if a.unsupported is None), ["has_vm", "list_vms"])
        self.assertFalse(app.Director().has_vm("nothing"))
        with self.assertRaises(Err) as raised:
            app.Director().list_vms()
        self.assertEqual(raised.exception.value.kind, types.ErrorKind.UNAVAILABLE, "no state directory here")
