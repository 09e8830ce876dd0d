"""The ``crmsync`` command line (typer + rich), one module per audience:

==========================  ==================================================================
``app``                     the typer app: global options, every command listed, ``main()``
``base``                    what every command shares: context, config, consoles, ``fail``,
                            the engine a command works on (imports no command module)
``tables``                  rich tables and the lines several commands print alike
``progress``                progress on long work: per system read, pushes settled of all,
                            rate, time left, and a rate limit or retry waited for
``store_access``            opening the store for a command: checked, read-only when reading
``inspect``                 look, change nothing: ``config check``, ``status``, ``plan``,
                            ``verify``, ``history``
``operator``                act on a running installation: ``conflicts``, ``deadletters``,
                            ``resync``, ``reconcile``, ``deletes``, ``rebind``
``firstrun``                the first run: ``doctor``, ``match``
``run``                     run crmsync: ``run``, ``demo``, ``emulate``, ``scheduler``,
                            ``worker``, ``admin``
``store``                   ``db upgrade``
==========================  ==================================================================

The arrows point one way: ``app`` imports the command modules, they import ``base`` and
``tables``, and no command module imports another. Listings and actions on the store go
through :mod:`sync.engine.operations`, the code the admin API runs; no module here queries the
store itself.
"""
