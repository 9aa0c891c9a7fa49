"""LDAP / Active Directory: configuration, connection test, user and group sync, login.

``directory`` speaks LDAP (ldap3: failover, TLS, paged searches with every result code
checked); ``service`` holds the configuration (validated on save, bind password
write-only), the connection test and the sync's entry points, lock and reports;
``sync`` plans and applies one sync run; ``login`` checks a directory user's password
by binding as them; ``jobs`` runs the sync on a worker and on the configured schedule;
``api``/``views`` are the admin's REST and web surfaces.
"""
