-- The usersdb database of the web system (the mysql-database module loads this
-- into a fresh database named usersdb): the users every application checks (body: the user's name).
-- As in the seeds, the database's user and password are its name.
CREATE USER IF NOT EXISTS 'usersdb'@'%' IDENTIFIED BY 'usersdb';
GRANT ALL PRIVILEGES ON `usersdb`.* TO 'usersdb'@'%';
CREATE TABLE users (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  owner VARCHAR(64) NOT NULL,
  body TEXT NOT NULL
) ENGINE=InnoDB;
