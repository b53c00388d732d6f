-- The cmsdb database of the web system (the mysql-database module loads this
-- into a fresh database named cmsdb): the application's records (owner: a user of usersdb).
-- Its account (user and password: its name) belongs to the MariaDB server,
-- as NixOS's services.mysql.ensureUsers would make it, not to this script:
-- a database restored from a dump on another server finds it there.
CREATE TABLE records (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  owner VARCHAR(64) NOT NULL,
  body TEXT NOT NULL
) ENGINE=InnoDB;
