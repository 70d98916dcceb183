"""``aos-shell`` as a person uses it: a real pseudo-terminal, a real kernel."""

from __future__ import annotations

import os

import pexpect


def test_create_enter_send_tail_interrupt_and_read_state(kernel, spawn_shell, where, shell_script):
    """A whole session: list, create, enter, send, see an event in the live tail, Ctrl-C to the prompt, read state."""
    sh = spawn_shell()
    sh.expect("connected to aos-kernel")
    sh.expect(where("default"))
    sh.sendline("worlds")
    sh.expect(r"\(no worlds in universe default")
    sh.expect(where("default"))

    sh.sendline("create examples/counter --id c1")
    sh.expect(r"created world c1 \(demo/counter\)")
    sh.expect(where("default"))
    sh.sendline("worlds")
    sh.expect(r"c1\s+demo/counter\s+(\x1b\[[0-9;]*m)*(awake|hibernated)")
    sh.expect(where("default"))

    sh.sendline("world c1")
    sh.expect(where("default/c1"))
    sh.sendline('send demo/CounterEvent@1 {"by": 2}')
    sh.expect("event journaled at seq 1")
    sh.expect(where("default/c1"))

    sh.sendline("journal --tail")
    sh.expect(r"following c1 from seq \d+ \(Ctrl-C to stop\)")
    sent = shell_script('world c1; send demo/CounterEvent@1 {"by": 40}')  # another user of the same world
    assert sent.returncode == 0, sent.stderr
    sh.expect(r'event\s+demo/CounterEvent@1 \{"by": 40\}')
    sh.sendcontrol("c")
    sh.expect(r"\(interrupted\)")
    sh.expect(where("default/c1"))

    sh.sendline("state demo/counter@1")
    sh.expect(r'"count"(\x1b\[[0-9;]*m)*: (\x1b\[[0-9;]*m)*42')
    sh.expect(where("default/c1"))
    sh.sendline("world ..")
    sh.expect(where("default"))
    sh.sendcontrol("d")
    sh.expect(pexpect.EOF)
    sh.close()
    assert sh.exitstatus == 0


def test_bad_input_gives_one_line_errors_and_the_prompt_stays(kernel, spawn_shell, where):
    """Unknown command, malformed JSON, unknown world, grants outside a world: one error line each, and the prompt."""
    sh = spawn_shell()
    sh.expect(where("default"))
    for line, error, place in (
        ("frobnicate", r"error: UnknownCommand: 'frobnicate' is not a command", "default"),
        ("world nope", r"error: UnknownWorld: no world 'nope'", "default"),
        ("state", r"error: InvalidArgument: not in a world", "default"),
        ("grants", r"error: InvalidArgument: enter a world first", "default"),
        ("create examples/counter --id w; world w", r"created world w", "default/w"),
        ('send demo/CounterEvent@1 {"by": ', r"error: InvalidArgument: the event value is not valid JSON", "default/w"),
        ('send demo/CounterEvent@1 {"by": "two"}', r"error: SchemaViolation: \$\.value\.by", "default/w"),
    ):
        sh.sendline(line)
        sh.expect(error)
        sh.expect(where(place))
        if error.startswith("error: "):  # the rest of that one line, then the prompt: no second line, no traceback
            assert "Traceback" not in sh.before and sh.before.count("\n") <= 1, sh.before
    sh.sendline("world")
    sh.expect("in world w")
    sh.sendline("exit")
    sh.expect(pexpect.EOF)
    sh.close()
    assert sh.exitstatus == 0


def test_ctrl_c_at_the_prompt_clears_the_line(kernel, spawn_shell, where):
    """Ctrl-C on a half-typed line throws it away: the next Enter runs only what is typed after."""
    sh = spawn_shell()
    sh.expect(where("default"))
    sh.send("frobnicate")
    sh.sendcontrol("c")
    sh.expect(where("default"))
    sh.sendline("universe")  # had the line not been cleared, this would run "frobnicateuniverse"
    assert sh.expect(["universe default", "UnknownCommand"]) == 0
    sh.sendline("exit")
    sh.expect(pexpect.EOF)


def test_a_forged_token_is_one_error_line_and_a_working_prompt(kernel, spawn_shell, where, tmp_path):
    """A forged token file at start says why in one line; local commands still work at the prompt."""
    forged = tmp_path / "forged.token"
    forged.write_text("not-a-token\n")
    sh = spawn_shell(str(forged))
    sh.expect(r"error: InvalidToken: ")
    sh.expect(where("default"))
    sh.sendline("help send")
    sh.expect("send an event to this world")
    sh.sendline("worlds")
    sh.expect(r"error: InvalidToken: ")
    sh.expect(where("default"))
    sh.sendline("exit")
    sh.expect(pexpect.EOF)


def test_kernel_going_away_is_an_error_then_a_reconnect(kernel, spawn_shell, where):
    """When the kernel stops the next command fails in one line; once it is back the shell reconnects, in its world."""
    sh = spawn_shell()
    sh.expect(where("default"))
    sh.sendline("create examples/counter --id r1; world r1")
    sh.expect(where("default/r1"))
    kernel.stop()
    sh.sendline("state demo/counter@1")
    sh.expect(r"error: KernelUnavailable: ")
    sh.expect(where("default/r1"))
    kernel.start()
    sh.sendline('send demo/CounterEvent@1 {"by": 5}')
    sh.expect("reconnected to ")
    sh.expect("event journaled at seq 1")
    sh.expect(where("default/r1"))
    sh.sendline("state demo/counter@1")
    sh.expect(r'"count"(\x1b\[[0-9;]*m)*: (\x1b\[[0-9;]*m)*5')
    sh.sendline("exit")
    sh.expect(pexpect.EOF)


def test_history_is_kept_between_runs_and_tab_completes(kernel, spawn_shell, where, shell_env):
    """A command typed in one run is in the history file and recalled with Up in the next; Tab completes a command."""
    sh = spawn_shell()
    sh.expect(where("default"))
    sh.sendline("universe")
    sh.expect("universe default")
    sh.expect(where("default"))
    sh.sendcontrol("d")
    sh.expect(pexpect.EOF)
    history = os.path.join(shell_env["XDG_DATA_HOME"], "aos", "shell_history")
    with open(history) as f:
        assert "+universe" in f.read()

    sh = spawn_shell()
    sh.expect(where("default"))
    sh.send("\x1b[A")  # Up: the last command of the previous run
    sh.expect("universe")
    sh.send("\r")
    sh.expect("universe default")
    sh.expect(where("default"))
    sh.send("statu\t")
    sh.expect(r"statu(\x1b\[[0-9;?]*[A-Za-z])*s")  # under load the completed "s" is drawn apart
    sh.send("\r")
    sh.expect(r"limits(\x1b\[[0-9;]*m)*\s+message")
    sh.sendline("exit")
    sh.expect(pexpect.EOF)


def test_a_revoked_token_is_one_error_line_at_start_and_mid_session(kernel, spawn_shell, where, tmp_path):
    """A delegated kernel token that is revoked fails the next command in one line; the prompt keeps working."""
    from aos.kernel.client import Connection, run

    async def make_token():
        async with await Connection.open(kernel.address) as conn:
            admin = await conn.restore_kernel(kernel.admin_token)
            delegated = await admin.delegate()
            token = await delegated.save()
            return token, await delegated.revoker.save()

    token, revoker_token = run(make_token())
    token_file = tmp_path / "delegated.token"
    token_file.write_text(token + "\n")
    sh = spawn_shell(str(token_file))
    sh.expect(where("default"))
    sh.sendline("worlds")
    sh.expect(r"no worlds")

    async def revoke():
        async with await Connection.open(kernel.address) as conn:
            await (await conn.restore_as(revoker_token)).revoke()

    run(revoke())
    sh.sendline("worlds")
    sh.expect(r"error: Revoked: ")
    sh.expect(where("default"))
    sh.sendline("help")
    sh.expect("commands")
    sh.sendline("exit")
    sh.expect(pexpect.EOF)
    again = spawn_shell(str(token_file))  # and at start
    again.expect(r"error: Revoked: ")
    again.expect(where("default"))
    again.sendline("exit")
    again.expect(pexpect.EOF)
